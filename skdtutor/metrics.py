"""Accuracy, calibration and confidence metrics on logits.

All functions take logits of shape ``(n, classes)`` (and integer labels of
shape ``(n,)`` where needed) and return Python floats, except
:func:`reliability_bins` which returns a pandas DataFrame.
"""
from __future__ import annotations

import pandas as pd
import torch

from .losses.functional import _log_softmax, _softmax  # fast for few classes on a CPU

__all__ = ["accuracy", "nll", "ece", "reliability_bins", "entropy", "mean_max_prob",
           "logit_norm", "agreement", "summarize", "summarize_members"]


def _probs(logits):
    return _softmax(logits.detach().float())


def accuracy(logits, labels) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (logits.argmax(-1) == labels).float().mean().item()


def nll(logits, labels) -> float:
    """Mean negative log-likelihood of the labels (cross-entropy, nats)."""
    log_p = _log_softmax(logits.detach().float())
    return -log_p.gather(-1, labels.long().view(-1, 1)).mean().item()


def _member_bin_sums(conf, correct, n_bins: int):
    """Per member of ``conf``/``correct`` ``(members, n)`` and equal-width confidence bin: edges,
    count, summed confidence, summed correctness, each ``(members, n_bins)``; one bincount over
    member-offset bins (bin k holds (edges[k], edges[k+1]]; a confidence is always > 0)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    members = conf.shape[0]
    conf, correct = conf.cpu().double(), correct.cpu().double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = torch.clamp(torch.bucketize(conf, edges) - 1, 0, n_bins - 1)
    index = (index + n_bins * torch.arange(members).view(-1, 1)).view(-1)
    size = members * n_bins

    def sums(weights=None):
        return torch.bincount(index, weights=weights, minlength=size).double().view(members, n_bins)

    return edges, sums(), sums(conf.reshape(-1)), sums(correct.reshape(-1))


def _member_ece(conf, correct, n_bins: int):
    """:func:`ece` per member (NaN for a member without samples)."""
    _, count, conf_sum, correct_sum = _member_bin_sums(conf, correct, n_bins)
    gap = torch.where(count > 0, (correct_sum - conf_sum).abs(), torch.zeros_like(count))
    total = count.sum(-1)  # gap = count * |accuracy - confidence| per bin
    return torch.where(total > 0, gap.sum(-1) / total, torch.full_like(total, float("nan")))


def _bin_sums(logits, labels, n_bins: int):
    """:func:`_member_bin_sums` of one model's logits: edges and three ``(n_bins,)`` sums."""
    conf, pred = _probs(logits).max(-1)
    edges, *sums = _member_bin_sums(conf.unsqueeze(0), (pred == labels).unsqueeze(0), n_bins)
    return (edges, *(v[0] for v in sums))


def reliability_bins(logits, labels, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width confidence bins for a reliability diagram.

    Columns: ``lower``, ``upper``, ``count``, ``confidence`` (mean max
    probability in the bin), ``accuracy`` (fraction correct in the bin).
    Empty bins have NaN confidence and accuracy.
    """
    edges, count, conf_sum, correct_sum = _bin_sums(logits, labels, n_bins)
    return pd.DataFrame({"lower": edges[:-1].numpy(), "upper": edges[1:].numpy(),
                         "count": count.long().numpy(),
                         "confidence": (conf_sum / count).numpy(),  # NaN where empty
                         "accuracy": (correct_sum / count).numpy()})


def ece(logits, labels, n_bins: int = 15) -> float:
    """Expected calibration error: sum over bins of (bin size / n) * |accuracy - confidence|.

    Computed on the bin sums directly (no DataFrame): every evaluated epoch of every
    student calls it. NaN without samples."""
    conf, pred = _probs(logits).max(-1)
    return float(_member_ece(conf.unsqueeze(0), (pred == labels).unsqueeze(0), n_bins)[0])


def entropy(logits, T: float = 1.0) -> float:
    """Mean entropy (nats) of softmax(z / T)."""
    if not T > 0:
        raise ValueError(f"temperature T must be > 0, got {T!r}")
    log_p = _log_softmax(logits.detach().float() / T)
    return -(log_p.exp() * log_p).sum(-1).mean().item()


def mean_max_prob(logits) -> float:
    """Mean of the largest class probability: the model's average confidence."""
    return _probs(logits).max(-1).values.mean().item()


def logit_norm(logits) -> float:
    """Mean Euclidean norm of the logit rows."""
    return logits.detach().float().norm(dim=-1).mean().item()


def agreement(student_logits, teacher_logits) -> float:
    """Fraction of rows where student and teacher predict the same class."""
    return (student_logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean().item()


def summarize(logits, labels, teacher_logits=None, prefix: str = "test_") -> dict:
    """All metrics of one split in one dict (keys prefixed by ``prefix``): accuracy, nll, ece,
    max_prob, logit_norm, entropy, and agreement with ``teacher_logits`` when given."""
    return summarize_members(logits.unsqueeze(0), labels, teacher_logits, prefix)[0]


def summarize_members(logits, labels, teacher_logits=None, prefix: str = "test_",
                      n_bins: int = 15) -> list[dict]:
    """:func:`summarize` for every member of a stack at once: ``logits`` is ``(members, n,
    classes)``; ``teacher_logits`` None, one ``(n, classes)`` tensor for all members, or a list
    with one per member. The same formulas on the whole stack, a few operations instead of a
    few per member (a stacked sweep evaluates all its students every evaluated epoch)."""
    z = logits.detach().float()
    members, n = z.shape[:2]
    log_p = _log_softmax(z)
    conf, pred = _softmax(z).max(-1)  # max(-1).indices: the first of tied maxima, as argmax
    correct = pred == labels
    out = {"acc": correct.float().mean(-1),
           "nll": -log_p.gather(-1, labels.long().view(1, -1, 1).expand(members, n, 1)).squeeze(-1).mean(-1),
           "ece": _member_ece(conf, correct, n_bins), "max_prob": conf.mean(-1),
           "logit_norm": z.norm(dim=-1).mean(-1), "entropy": -(log_p.exp() * log_p).sum(-1).mean(-1)}
    if teacher_logits is not None:
        if isinstance(teacher_logits, torch.Tensor):
            teacher_pred = teacher_logits.max(-1).indices.expand(members, n)
        else:
            teacher_pred = torch.stack([t.max(-1).indices for t in teacher_logits])
        out["agreement"] = (pred == teacher_pred).float().mean(-1)
    values = {k: v.tolist() for k, v in out.items()}
    return [{prefix + k: values[k][j] for k in out} for j in range(members)]
