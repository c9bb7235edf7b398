"""Input checks of the losses: each raises ``ValueError`` naming the problem.

The public functions of :mod:`skdtutor.losses.functional` call them on every
call; the loss objects of :mod:`skdtutor.losses.objects` call the
hyperparameter checks once, when they are built. :data:`TEMPERATURE_RANGE` and
:data:`MULTIPLIER_RANGE` are the ranges float32 logits survive (the reasoning is
in the comment above them).
"""
from __future__ import annotations

import math
import numbers

import torch

__all__ = ["check_logits", "check_pair", "check_labels", "check_probabilities", "check_temperature",
           "check_gamma", "check_multiplier", "is_real", "TEMPERATURE_RANGE", "MULTIPLIER_RANGE"]


def check_logits(x, name: str = "logits") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D (batch, classes), got shape {tuple(x.shape)}; "
            "reshape a single vector with .unsqueeze(0)")
    if x.shape[0] == 0 or x.shape[1] < 2:
        raise ValueError(f"{name} needs at least one row and two classes, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the model output before the loss")


def check_pair(a, b, names=("student_logits", "teacher_logits")) -> None:
    check_logits(a, names[0])
    check_logits(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


def is_real(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dim() == 0 and x.dtype != torch.bool
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


# What float32 logits survive. The trainers compute in float32 (largest value 3.4e38 =
# exp(88.7), smallest normal 1.2e-38 = exp(-87.3), relative rounding eps = 1.2e-7) on
# logits whose gaps are typically 1 to 100 (up to 1e3 for skdtutor.teachers.hard_targets).
# * T >= 1e-2: below it softmax(z / T) is already one-hot to float32 precision for any logit
#   gap >= 1 (exp(-1 / 1e-2) = exp(-100) underflows), so a smaller T changes nothing but moves
#   z / T towards overflow (T = 1e-40 turns every logit into inf, and the loss into NaN).
# * T <= 1e2: the KL of two nearly uniform distributions is a difference of log-probabilities
#   that each carry a rounding error of about eps, and the loss multiplies it by T^2: its
#   float32 error is about eps * T^2 (measured in tests/test_losses.py), 1e-3 at T = 100
#   (small next to a loss of order 1) but 0.1 at T = 1e3, and T^2 overflows at T = 1.8e19.
# * multiplier in [1e-2, 1e3]: a projected row has entries within +-m sqrt(C - 1), so with
#   T >= 1e-2 the softened logits stay within 1e5 sqrt(C - 1): far from overflow; a smaller
#   m flattens every row towards the uniform distribution, a larger one only sharpens it
#   further (the book's multipliers are 0.5 to 6, the paper's 1 to 10).
TEMPERATURE_RANGE = (1e-2, 1e2)
MULTIPLIER_RANGE = (1e-2, 1e3)


def check_temperature(T) -> None:
    """A ValueError unless ``T`` is a number in :data:`TEMPERATURE_RANGE` (what float32 survives)."""
    low, high = TEMPERATURE_RANGE
    if not is_real(T) or not math.isfinite(float(T)) or not low <= float(T) <= high:
        raise ValueError(f"temperature T must be a number in [{low:g}, {high:g}] (the range float32 "
                         f"logits survive; see skdtutor.losses.TEMPERATURE_RANGE), got {T!r}")


def check_gamma(gamma) -> None:
    """A ValueError unless ``gamma`` (the weight of the distillation term) lies in [0, 1]."""
    if not is_real(gamma) or not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma (weight of the distillation term) must lie in [0, 1], got {gamma!r}")


def check_multiplier(multiplier) -> None:
    """A ValueError unless ``multiplier`` lies in :data:`MULTIPLIER_RANGE`."""
    low, high = MULTIPLIER_RANGE
    if not is_real(multiplier) or not math.isfinite(float(multiplier)) or not low <= float(multiplier) <= high:
        raise ValueError(f"multiplier (radius of the sphere) must be a number in [{low:g}, {high:g}] "
                         f"(the range float32 logits survive; see skdtutor.losses.MULTIPLIER_RANGE), "
                         f"got {multiplier!r}")


def check_labels(labels, batch: int, classes: int) -> None:
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(f"labels must have shape ({batch},) to match the logits, got {tuple(labels.shape)}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if batch and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes - 1}] for {classes} classes, got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def check_probabilities(p, name: str) -> None:
    check_logits(p, name)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative (probabilities); apply soften() to logits first")
