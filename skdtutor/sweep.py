"""Many students of one architecture trained as one stacked model: :func:`distill_sweep`.

One forward pass, one backward pass and one optimizer step update all N members
(different seeds, temperatures, gammas, multipliers, methods, even teachers).
Each member computes the formulas of its own :func:`skdtutor.train.distill` run
with the same seed (same initial weights, same batch order, same loss and Adam),
so the results match the sequential runs up to float rounding. Where the sweep is
faster it changes how, not what: the KD, SKD and CE gradients are written out in
closed form (:mod:`skdtutor.losses.fused`), what a loss reads from the teacher alone
is computed once per sweep (:mod:`skdtutor.sweep_loss`), and a layer with few
outputs is computed transposed. The layers and the optimizer live in
:mod:`skdtutor.stacking`; the steps shared with the single trainer in :mod:`skdtutor.steps`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.autograd.profiler import record_function

from .config import TrainConfig, train_config
from .losses import DistillLoss
from .stacked_adam import StackedAdam
from .stacking import stacked_forward
from .sweep_loss import StackedLoss, group_members
from .steps import (History, batch_bounds, check_data, check_mask, diverged_message, due_for_eval,
                    epoch_metrics, epoch_order, evaluate_members, finite_members, gather_whole_epoch, nan_metrics,
                    num_threads, progress_bar, resolve_device, resolve_teacher, run_record)

__all__ = ["SweepMember", "distill_sweep", "stackable"]

_UNSTACKABLE = (nn.modules.batchnorm._BatchNorm, nn.Dropout)

# Copy the epoch's inputs once per member (not per seed) when all copies fit in this many
# bytes: it saves an expansion per step; above it (e.g. 15 x 3,600 MNIST images, 170 MB)
# writing and re-reading the copy from memory costs more than expanding each batch in cache.
MEMBER_GATHER_BYTES = 16 * 2 ** 20


@dataclass(frozen=True)
class SweepMember:
    """One student of a sweep: its loss, its seed (initial weights and batch order) and
    which teacher it learns from (an index into the sweep's teachers; 0 with one teacher)."""

    loss: DistillLoss
    seed: int = 0
    teacher: int = 0


def _unstackable_layer(model: nn.Module):
    """The first batch-norm or dropout layer of ``model`` (they cannot be stacked), or None."""
    return next((mod for mod in model.modules() if isinstance(mod, _UNSTACKABLE)), None)


def stackable(make_student: Callable[[], nn.Module]) -> bool:
    """Whether students built by ``make_student`` can be trained by :func:`distill_sweep`
    (no batch norm, no dropout). Builds one model, so it draws from torch's global RNG."""
    return _unstackable_layer(make_student()) is None


def distill_sweep(make_student: Callable[[], nn.Module], teacher, data,
                  members: Sequence[SweepMember], epochs: int | None = None, *,
                  config: TrainConfig | None = None, progress="auto", labelled=None,
                  **overrides) -> list[History]:
    """Train many students of one architecture as one stacked model; one History per member.

    ``make_student()`` must build the architecture; member ``i`` is initialised by
    calling it under ``torch.manual_seed(members[i].seed)`` and shuffles with a
    generator seeded the same way, exactly like
    ``torch.manual_seed(seed); distill(make_student(), teacher, data, loss, seed=seed)``.
    ``teacher`` is a module, :class:`~skdtutor.steps.TeacherLogits`, None (losses
    without a teacher), or a list of TeacherLogits: member ``i`` then learns from
    ``teacher[members[i].teacher]``, and students of different teachers still train as
    one model. Members with the same seed share one shuffled copy of the inputs.
    Losses of different kinds are grouped; within a group the temperature, gamma
    and multiplier are tensors with one entry per member.

    Each member computes the formulas of its sequential :func:`~skdtutor.train.distill`
    run, in another order: in float64 the weights agree to float rounding (the tests
    check 1e-12), in float32 to ~1e-7 after a few epochs (the tests check 1e-5).
    Like any change of summation order, last-bit
    differences can grow over long float32 runs for some seeds; the runs are then
    different samples of the same distribution, not different methods.

    Speed: on a CPU the gain is largest for small fully connected students;
    convolutional students are already compute-bound there and gain little. On a
    GPU both gain. The architecture must be free of batch norm and dropout (see
    :func:`stackable`). ``epochs``, ``config`` and ``**overrides`` as in
    :func:`~skdtutor.train.train_teacher` (the config's seed is unused: each member
    has its own). Returns the histories in the order of ``members``;
    ``history.model`` is the member's trained model.

    Divergence: once per epoch every member's epoch loss and weights are checked.
    A member whose loss or weights became non-finite is marked (a RuntimeWarning
    names it; ``history.diverged_epoch`` is set; its last row has ``diverged=True``
    and NaN metrics) and gets no more rows; the others train on unaffected (the
    members share no arithmetic). Its accuracy is never reported as trained.
    """
    members = list(members)
    if not members:
        raise ValueError("members is empty; pass at least one SweepMember(loss, seed)")
    for m in members:
        if not isinstance(m, SweepMember) or not isinstance(m.loss, DistillLoss):
            raise ValueError(f"members must be SweepMember(loss, seed) items, got {m!r}")
    cfg = train_config(config, **overrides, **({} if epochs is None else {"epochs": epochs}))
    check_data(data)
    with num_threads(cfg.threads):
        return _sweep(make_student, teacher, data, members, cfg, progress, labelled)


def _teachers(teacher, data, members, device):
    """The members' teachers as a list of TeacherLogits (None when there is no teacher)."""
    if isinstance(teacher, (list, tuple)):
        teachers = [resolve_teacher(t, data, device)[0] for t in teacher]
        if not teachers or any(t is None for t in teachers):
            raise ValueError("a list of teachers must hold TeacherLogits or modules, none of them None")
    else:
        needs = next((m.loss.name for m in members if m.loss.needs_teacher), None)
        one = resolve_teacher(teacher, data, device, needs)[0]
        if one is None:
            return None
        teachers = [one]
    bad = [m.teacher for m in members if not 0 <= m.teacher < len(teachers)]
    if bad:
        raise ValueError(f"member teacher indices {bad} do not index the {len(teachers)} teacher(s)")
    return teachers


def _students(make_student, members, device):
    """Member ``i``'s initial model, built under ``torch.manual_seed(members[i].seed)``."""
    students = []
    for m in members:
        torch.manual_seed(m.seed)
        students.append(make_student().to(device))
        layer = _unstackable_layer(students[-1])
        if layer is not None:
            raise ValueError(f"distill_sweep cannot stack {type(layer).__name__} layers; "
                             "train these students with sequential distill() calls")
    return students


def _stack(models):
    """The models' parameters (leaves to train) and buffers, stacked along a new first axis."""
    params = {name: torch.stack([dict(s.named_parameters())[name].detach() for s in models])
              .requires_grad_() for name, _ in models[0].named_parameters()}
    buffers = {name: torch.stack([dict(s.named_buffers())[name] for s in models])
               for name, _ in models[0].named_buffers()}
    return params, buffers


def _sweep(make_student, teacher, data, members, cfg: TrainConfig, progress, labelled):
    device = resolve_device(cfg.device)
    n, n_members = len(data.y_train), len(members)
    mask = check_mask(labelled, n)
    students = _students(make_student, members, device)
    teachers = _teachers(teacher, data, members, device)
    order, groups = group_members(members)
    stacked = [students[i] for i in order]  # position j holds member order[j]
    x, y = data.x_train.to(device), data.y_train.to(device)
    net = stacked_forward(stacked, *_stack(stacked), x[:4])
    groups = [(a, b, fns, {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in hp.items()})
              for a, b, fns, hp in groups]
    optimizer = StackedAdam(net.weights.values(), cfg.lr, cfg.weight_decay, device)
    # Members with the same seed shuffle identically: one generator per distinct seed ("stream").
    seeds = list(dict.fromkeys(members[i].seed for i in order))
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    stream = torch.tensor([seeds.index(members[i].seed) for i in order], device=device)
    shared = len(seeds) < n_members
    teacher_rows = None  # (members, n, C): the logits position j learns from, in the data's order
    if teachers is not None:
        t_train = torch.stack([t.train for t in teachers]).to(device)
        teacher_rows = t_train[0].expand(n_members, *t_train.shape[1:]) if len(teachers) == 1 else \
            t_train.index_select(0, torch.tensor([members[i].teacher for i in order], device=device))
    loss_of = StackedLoss(groups, teacher_rows)
    mask = None if mask is None else mask.to(device)
    bounds, sizes = batch_bounds(n, cfg.batch_size, device)
    # The epoch's inputs gathered at once: per member when small (a batch is then a view), else
    # per stream (a batch is expanded to the members, in cache), else batch by batch (least
    # memory). The same numbers every way.
    x_bytes = x.element_size() * x.numel()
    gather = "member" if n_members * x_bytes <= MEMBER_GATHER_BYTES else \
        "stream" if gather_whole_epoch(len(seeds) * x_bytes) else None
    histories = [History(config=run_record(m.loss, cfg, seed=m.seed)) for m in members]
    xe = None  # the epoch's gathered inputs (see gather)

    @torch.inference_mode()
    def stacked_predict(xs):
        out = [net.forward(xs[i:i + 2048].to(device).unsqueeze(0).expand(n_members, -1, *xs.shape[1:]))
               .float() for i in range(0, len(xs), 2048)]
        return torch.cat(out, dim=1).cpu()

    def batches(split, epoch_tensor):  # the epoch's (members, n, ...) tensor as per-batch views
        return [None] * len(bounds) if epoch_tensor is None else epoch_tensor.split(split, dim=1)

    bar = progress_bar(cfg.epochs, f"sweep x{n_members}", progress)
    for epoch in range(1, cfg.epochs + 1):
        stream_perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        perms = stream_perms.index_select(0, stream) if shared else stream_perms  # (members, n)
        ye, _, me = epoch_order(perms, y, None, mask)
        if gather:  # into the same buffer every epoch: a fresh one costs a page fault per 4 KiB
            rows = perms if gather == "member" else stream_perms
            if xe is None:
                xe = x.new_empty((len(rows), *x.shape))
            torch.index_select(x, 0, rows.view(-1), out=xe.view(-1, *x.shape[1:]))
        losses, preds = [], []  # per batch: the members' losses and predicted classes
        for (s, e), yb, mb, tb, xb in zip(bounds, *(batches(cfg.batch_size, t) for t in (ye, me)),
                                          loss_of.epoch_batches(perms, cfg.batch_size),
                                          batches(cfg.batch_size, xe if gather else None)):
            if gather is None:
                xb = x[perms[:, s:e]]
            elif gather == "stream" and shared:
                xb = xb.index_select(0, stream)
            logits = net.forward(xb)  # (members, batch, classes)
            per_member = loss_of(logits, tb, yb, mb)
            optimizer.step(per_member.sum())  # members are independent: each gets its own gradient
            losses.append(per_member.detach())
            # max(-1).indices is argmax (the first of tied maxima) without argmax's slow path on the
            # transposed logits of a small head (see stacking._StackedLinear)
            preds.append(logits.detach().max(-1).indices)
        train_loss, train_acc = epoch_metrics(losses, preds, ye, sizes, n)
        finite = finite_members(train_loss, list(net.weights.values()))  # one sync per epoch
        evaluated = due_for_eval(epoch, cfg)
        with record_function("sweep.evaluate"):  # a label for profiles (once per epoch)
            if evaluated:  # every member at once; rows[j] is stacked position j's
                position_teachers = [None if teachers is None else teachers[members[i].teacher]
                                     for i in order]
                evaluation = evaluate_members(stacked_predict(data.x_val), stacked_predict(data.x_test),
                                              data, position_teachers)
            for j, i in enumerate(order):
                if histories[i].diverged_epoch is not None:
                    continue  # diverged earlier: no more rows (the others train on, unaffected)
                row = {"epoch": epoch, "train_loss": train_loss[j], "train_acc": train_acc[j]}
                own = None if teachers is None else teachers[members[i].teacher]
                if not finite[j]:
                    histories[i].diverged_epoch = epoch
                    warnings.warn(diverged_message(histories[i].config, epoch, train_loss[j])
                                  + "; the member is marked diverged, the others train on",
                                  RuntimeWarning, stacklevel=3)
                    row.update(nan_metrics(data, own), diverged=True, diverged_epoch=epoch)
                elif evaluated:
                    row.update(evaluation[j])
                histories[i].rows.append(row)
        if progress:
            bar.update(1)
        if all(h.diverged_epoch is not None for h in histories):
            break
    bar.close()
    for j, i in enumerate(order):  # member i's trained weights back into its own model
        students[i].load_state_dict({k: net.to_module[k](v[j].detach()).clone()
                                     for k, v in net.weights.items()}, strict=False)
        histories[i].model = students[i].eval()
    return histories
