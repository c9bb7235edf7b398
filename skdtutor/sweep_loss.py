"""The loss of a stacked sweep: members grouped by kind of loss, teacher terms computed once.

:func:`group_members` orders the members so that losses computed together are
contiguous. :class:`StackedLoss` computes, once per sweep, what each group's loss
reads from the teacher alone (:meth:`~skdtutor.losses.DistillLoss.teacher_terms`:
the softened teacher for KD and SKD, the logits themselves for other losses) for every
training sample, gathers those rows in each epoch's batch order, and returns every
member's mean loss of a batch. The teacher's rows do not change during a sweep, so the
terms are the same as computing them batch by batch, without the per-batch work.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["group_members", "StackedLoss"]


def group_members(members: Sequence):
    """Order the members so that losses computed together are contiguous.

    Returns ``(order, groups)``: ``order[j]`` is the member at stacked position
    ``j``; each group is ``(start, stop, (teacher_terms, per_sample_terms), hparams)``
    over stacked positions (the loss's :meth:`~skdtutor.losses.DistillLoss.terms_functions`),
    where a hyperparameter that differs inside the group is a tensor
    with one entry per member (shape ``(k, 1, 1)``) and one shared by the whole
    group stays a Python number, exactly as in the member's own run.
    """
    keyed: dict[tuple, list[int]] = {}
    for i, m in enumerate(members):
        keyed.setdefault(m.loss.static_key(), []).append(i)
    order, groups = [], []
    for indices in keyed.values():
        first = members[indices[0]].loss
        hp = {}
        for name, value in first.hparams().items():
            values = [members[i].loss.hparams()[name] for i in indices]
            if name in first.stackable and any(v != value for v in values):
                hp[name] = torch.tensor([float(v) for v in values], dtype=torch.float32).view(-1, 1, 1)
            else:
                hp[name] = value
        groups.append((len(order), len(order) + len(indices), type(first).terms_functions(), hp))
        order += indices
    return order, groups


def _parts(terms):
    """The tensors of one group's terms (None, a tensor or a tuple of tensors) as a list."""
    if terms is None:
        return []
    return [terms] if isinstance(terms, torch.Tensor) else list(terms)


def _rebuild(terms, parts):
    """``terms``' structure filled with ``parts``."""
    if terms is None:
        return None
    return parts[0] if isinstance(terms, torch.Tensor) else tuple(parts)


class StackedLoss:
    """Every member's mean loss of a batch, with the teacher's terms computed once.

    ``groups`` as from :func:`group_members` (hyperparameter tensors on the device);
    ``teacher_rows`` the teacher logits each stacked position learns from, in the data's
    order, shape ``(members, n, classes)`` (an expanded view is fine), or None.
    """

    def __init__(self, groups, teacher_rows):
        self.groups = groups
        self.single = len(groups) == 1  # one kind of loss: no slicing (a slice is a backward node)
        self.terms, self.offsets, self.buffers = [], [], []
        with torch.no_grad():
            for a, b, fns, hp in groups:
                rows = None if teacher_rows is None else teacher_rows[a:b]
                terms = fns[0](rows, **hp)
                parts = [p.contiguous() for p in _parts(terms)]  # (k, n, ...) each
                self.terms.append(_rebuild(terms, parts))
                n = parts[0].shape[1] if parts else 0
                device = parts[0].device if parts else None
                self.offsets.append(None if not parts else
                                    (torch.arange(b - a, device=device) * n).view(-1, 1))
                self.buffers.append([None] * len(parts))

    def epoch_batches(self, perms, batch_size: int):
        """Per batch of the epoch whose per-member order is ``perms`` ``(members, n)``: a tuple
        with each group's terms for that batch. The gathered rows reuse one buffer per tensor
        (a fresh allocation of this size costs a page fault per 4 KiB every epoch)."""
        per_group = []
        for g, ((a, b, _, _), terms) in enumerate(zip(self.groups, self.terms)):
            parts = _parts(terms)
            if not parts:
                per_group.append(None)
                continue
            flat = (perms[a:b] + self.offsets[g]).view(-1)
            split = []
            for p, part in enumerate(parts):
                if self.buffers[g][p] is None:
                    self.buffers[g][p] = part.new_empty(part.shape)
                out = self.buffers[g][p]
                torch.index_select(part.view(-1, *part.shape[2:]), 0, flat,
                                   out=out.view(-1, *part.shape[2:]))
                split.append(out.split(batch_size, dim=1))
            per_group.append([_rebuild(terms, list(batch)) for batch in zip(*split)])
        n_batches = -(-perms.shape[1] // batch_size)
        columns = [[None] * n_batches if pg is None else pg for pg in per_group]
        return list(zip(*columns))

    def __call__(self, logits, terms, labels, label_mask):
        """Per-member mean loss of a batch, shape ``(members,)``; ``terms`` one entry of
        :meth:`epoch_batches`."""
        if self.single:
            _, _, fns, hp = self.groups[0]
            return fns[1](logits, terms[0], labels, label_mask, **hp).mean(-1)
        parts = []
        for (a, b, fns, hp), group_terms in zip(self.groups, terms):
            mask = None if label_mask is None else label_mask[a:b]
            parts.append(fns[1](logits[a:b], group_terms, labels[a:b], mask, **hp).mean(-1))
        return torch.cat(parts)
