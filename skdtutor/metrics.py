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
           "logit_norm", "agreement", "summarize"]


def _probs(logits):
    return _softmax(logits.detach().float())


def accuracy(logits, labels) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (logits.argmax(-1) == labels).float().mean().item()


def nll(logits, labels) -> float:
    """Mean negative log-likelihood of the labels (cross-entropy, nats)."""
    log_p = _log_softmax(logits.detach().float())
    return -log_p.gather(-1, labels.long().view(-1, 1)).mean().item()


def _bin_sums(logits, labels, n_bins: int):
    """Per equal-width confidence bin: edges, count, summed confidence, summed correctness
    (bin k holds (edges[k], edges[k+1]]; a confidence is always > 0)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, pred = _probs(logits).max(-1)
    conf, correct = conf.cpu().double(), (pred == labels).cpu().double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = torch.clamp(torch.bucketize(conf, edges) - 1, 0, n_bins - 1)
    return (edges, torch.bincount(index, minlength=n_bins).double(),
            torch.bincount(index, weights=conf, minlength=n_bins),
            torch.bincount(index, weights=correct, minlength=n_bins))


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
    student calls it."""
    _, count, conf_sum, correct_sum = _bin_sums(logits, labels, n_bins)
    filled = count > 0
    gap = (correct_sum[filled] - conf_sum[filled]).abs()  # = count * |accuracy - confidence|
    total = count.sum().item()
    return float(gap.sum().item() / total) if total else float("nan")  # no samples: undefined


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
    """All metrics of one split in one dict (keys prefixed by ``prefix``)."""
    out = {"acc": accuracy(logits, labels), "nll": nll(logits, labels), "ece": ece(logits, labels),
           "max_prob": mean_max_prob(logits), "logit_norm": logit_norm(logits),
           "entropy": entropy(logits)}
    if teacher_logits is not None:
        out["agreement"] = agreement(logits, teacher_logits)
    return {prefix + k: v for k, v in out.items()}
