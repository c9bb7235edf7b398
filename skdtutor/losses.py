"""Distillation losses: pure functions on logits, plus thin objects for the trainers.

Every public function takes logits of shape ``(batch, classes)`` and returns the
mean over the batch (``soft_dice`` and ``dice3`` return one value per row).
Each validates its input and raises ``ValueError`` naming the problem.

The objects (:class:`CE`, :class:`KD`, :class:`SKD`, :class:`DiceKD`) hold the
hyperparameters, validated once, and call the same formulas without the per-call
checks, so a training step never waits on a host sync. Their ``per_sample``
static methods broadcast over leading dimensions, which is what lets
:mod:`skdtutor.train` train a whole sweep of students as one stacked model.

Notation: ``s`` student logits, ``t`` teacher logits, ``y`` integer labels,
``T`` temperature, ``gamma`` the weight of the distillation term,
``softmax(z / T)`` the softened distribution.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F

__all__ = [
    "soften", "kd_loss", "sphere", "skd_loss", "soft_dice", "dice_loss", "dice3",
    "DistillLoss", "CE", "KD", "SKD", "DiceKD", "make_loss", "METHODS",
    "check_pair", "check_labels", "check_temperature", "check_gamma", "check_multiplier",
    "TEMPERATURE_RANGE", "MULTIPLIER_RANGE",
]


# ----------------------------------------------------------------------------- checks
def _check_logits(x, name: str = "logits") -> None:
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
    _check_logits(a, names[0])
    _check_logits(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


def _is_real(x) -> bool:
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
    if not _is_real(T) or not math.isfinite(float(T)) or not low <= float(T) <= high:
        raise ValueError(f"temperature T must be a number in [{low:g}, {high:g}] (the range float32 "
                         f"logits survive; see skdtutor.losses.TEMPERATURE_RANGE), got {T!r}")


def _check_gamma(gamma) -> None:
    if not _is_real(gamma) or not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma (weight of the distillation term) must lie in [0, 1], got {gamma!r}")


def check_gamma(gamma) -> None:
    """A ValueError unless ``gamma`` (the weight of the distillation term) lies in [0, 1]."""
    _check_gamma(gamma)


def check_multiplier(multiplier) -> None:
    """A ValueError unless ``multiplier`` lies in :data:`MULTIPLIER_RANGE`."""
    _check_multiplier(multiplier)


def _check_multiplier(multiplier) -> None:
    low, high = MULTIPLIER_RANGE
    if not _is_real(multiplier) or not math.isfinite(float(multiplier)) or not low <= float(multiplier) <= high:
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


def _check_probabilities(p, name: str) -> None:
    _check_logits(p, name)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative (probabilities); apply soften() to logits first")


# ------------------------------------------------------------- broadcasting formulas
# These take logits of shape (..., batch, classes) and hyperparameters that are
# Python numbers or tensors broadcastable against the logits (e.g. (n, 1, 1) for a
# stack of n students). They return per-sample losses of shape (..., batch).

def _log_softmax(z):
    """``log_softmax(z, dim=-1)``, with the same values, computed fast for few classes on a CPU.

    PyTorch's CPU kernel for the last dimension handles a row shorter than one
    SIMD vector (16 floats with AVX-512) through its slow tail path: with 10
    classes it is about 5-8x slower than the kernel for an inner dimension, and
    it dominated the loss of a stacked sweep. Transposing first selects the
    latter (a view in, a view out; the same values up to float rounding).
    """
    if z.device.type == "cpu" and z.dim() >= 2 and z.shape[-1] < 16:
        return z.transpose(-1, -2).log_softmax(-2).transpose(-1, -2)
    return torch.log_softmax(z, dim=-1)


def _softmax(z):
    """``softmax(z, dim=-1)``; see :func:`_log_softmax`."""
    if z.device.type == "cpu" and z.dim() >= 2 and z.shape[-1] < 16:
        return z.transpose(-1, -2).softmax(-2).transpose(-1, -2)
    return torch.softmax(z, dim=-1)


def _cross_entropy(logits, labels, label_mask=None):
    nll = -_log_softmax(logits).gather(-1, labels.long().unsqueeze(-1))
    if label_mask is not None:
        nll = nll * label_mask.unsqueeze(-1).to(nll.dtype)
    return nll  # (..., batch, 1)


def _kl_soft(student_logits, teacher_logits, T):
    log_p_s = _log_softmax(student_logits / T)
    log_p_t = _log_softmax(teacher_logits / T)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1, keepdim=True)  # (..., batch, 1)


def _soft_dice(p, q, eps):
    num = 2.0 * (p * q).sum(-1, keepdim=True) + eps
    den = (p * p).sum(-1, keepdim=True) + (q * q).sum(-1, keepdim=True) + eps
    return num / den


def _mix(distill, ce, gamma):
    out = gamma * distill if ce is None else gamma * distill + (1.0 - gamma) * ce
    return out.squeeze(-1)


def _sphere(logits, multiplier, eps):
    return F.layer_norm(logits, logits.shape[-1:], eps=eps) * multiplier


# ------------------------------------------------------------------------ public API
def soften(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    r"""Softened class distribution :math:`\mathrm{softmax}(z / T)` along the last dimension.

    ``T = 1`` is the ordinary softmax; ``T > 1`` flattens the distribution,
    ``T < 1`` sharpens it. Shape in = shape out.
    """
    _check_logits(logits)
    check_temperature(T)
    return torch.softmax(logits / T, dim=-1)


def kd_loss(student_logits, teacher_logits, labels=None, T: float = 4.0, gamma: float = 0.9):
    r"""Hinton et al. (2015) knowledge-distillation loss, mean over the batch.

    .. math::
        L = \gamma\, T^2\, \mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)
            + (1-\gamma)\, \mathrm{CE}(s, y)

    The :math:`T^2` factor keeps the gradient of the soft term on the same scale
    as the hard term when ``T`` changes (its gradient shrinks like :math:`1/T^2`).
    With ``labels=None`` only the distillation term :math:`\gamma T^2 \mathrm{KL}`
    remains: distillation on unlabelled data. ``T`` must lie in
    :data:`TEMPERATURE_RANGE` ``[1e-2, 1e2]``, what float32 logits survive (see the
    comment there): outside it the loss is either no different, imprecise or NaN.
    """
    check_pair(student_logits, teacher_logits)
    check_temperature(T)
    _check_gamma(gamma)
    check_labels(labels, *student_logits.shape)
    return KD.per_sample(student_logits, teacher_logits, labels, T=T, gamma=gamma).mean()


def sphere(logits: torch.Tensor, multiplier: float = 2.0, eps: float = 1e-7) -> torch.Tensor:
    r"""Project each logit row onto a sphere: :math:`m\,(z - \bar z)/\sigma(z)`.

    :math:`\sigma` is the population standard deviation of the row, computed as
    :math:`\sqrt{\mathrm{var}(z) + \varepsilon}` (exactly
    ``F.layer_norm(z, (C,), eps=eps) * multiplier``, the form of Guo et al. 2020).
    Every projected row has mean 0 and length :math:`m\sqrt{C}` (up to eps), so
    the result no longer depends on how confident (how long) the logits were.
    A constant row maps to zeros, never NaN.
    """
    _check_logits(logits)
    _check_multiplier(multiplier)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    return _sphere(logits, multiplier, eps)


def skd_loss(student_logits, teacher_logits, labels=None, T: float = 4.0, gamma: float = 0.9,
             multiplier: float = 2.0, ce_on_raw: bool = False):
    r"""Spherical knowledge distillation (Guo et al. 2020, arXiv 2010.07485), mean over the batch.

    .. math::
        L = \mathrm{kd\_loss}\big(\mathrm{sphere}(s, m),\ \mathrm{sphere}(t, m),\ y, T, \gamma\big)

    Both logit vectors are projected to the same radius :math:`m\sqrt{C}` before
    the usual KD loss, which removes the teacher's excess confidence. As the
    paper's authors insist, the cross-entropy term is computed on the projected
    student logits too. ``ce_on_raw=True`` puts it on the raw student logits
    instead; it exists only for the ablation in the book. ``T`` must lie in
    :data:`TEMPERATURE_RANGE` and ``multiplier`` in :data:`MULTIPLIER_RANGE`
    (``[1e-2, 1e2]`` and ``[1e-2, 1e3]``, what float32 logits survive).
    """
    check_pair(student_logits, teacher_logits)
    check_temperature(T)
    _check_gamma(gamma)
    _check_multiplier(multiplier)
    check_labels(labels, *student_logits.shape)
    return SKD.per_sample(student_logits, teacher_logits, labels, T=T, gamma=gamma,
                          multiplier=multiplier, ce_on_raw=ce_on_raw).mean()


def soft_dice(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""Soft Dice coefficient of two batches of probability vectors, one value per row.

    .. math::
        D(p, q) = \frac{2\sum_k p_k q_k + \varepsilon}{\sum_k p_k^2 + \sum_k q_k^2 + \varepsilon}

    (Milletari et al. 2016). It is 1 exactly when ``p == q`` and is symmetric;
    unlike KL it is bounded and weighs classes by their squared mass, so
    near-zero probabilities barely count. Returns shape ``(batch,)``.
    """
    _check_probabilities(p, "p")
    _check_probabilities(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return _soft_dice(p, q, eps).squeeze(-1)


def dice_loss(student_logits, teacher_logits, labels=None, T: float = 4.0, gamma: float = 0.9):
    r"""Dice distillation loss, mean over the batch.

    .. math::
        L = \gamma\,\big(1 - D(\mathrm{softmax}(t/T), \mathrm{softmax}(s/T))\big)
            + (1-\gamma)\, \mathrm{CE}(s, y)

    with :math:`D` the soft Dice of :func:`soft_dice`. With ``labels=None`` only
    the Dice term remains. ``T`` must lie in :data:`TEMPERATURE_RANGE` ``[1e-2, 1e2]``.
    """
    check_pair(student_logits, teacher_logits)
    check_temperature(T)
    _check_gamma(gamma)
    check_labels(labels, *student_logits.shape)
    return DiceKD.per_sample(student_logits, teacher_logits, labels, T=T, gamma=gamma).mean()


def dice3(p: torch.Tensor, q: torch.Tensor, r: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""Three-subspace Dice of the seed notes (teacher ``p``, student ``q``, labels ``r``), per row.

    The intersection is the element-wise product; the union is counted by
    inclusion–exclusion:

    .. math::
        D_3 = \frac{\sum_k p_k q_k r_k + \varepsilon}
                   {\sum_k p_k + \sum_k q_k + \sum_k r_k - \sum_k p_k q_k - \sum_k p_k r_k
                    - \sum_k q_k r_k + \sum_k p_k q_k r_k + \varepsilon}

    With a one-hot ``r`` every product that contains ``r`` is zero except at the
    true class, so the numerator only sees :math:`p_y q_y`: whatever the teacher
    says about the incorrect classes cannot reach it. Returns shape ``(batch,)``.
    """
    for x, name in ((p, "p"), (q, "q"), (r, "r")):
        _check_probabilities(x, name)
    if not p.shape == q.shape == r.shape:
        raise ValueError(f"p, q and r must have the same shape, got {tuple(p.shape)}, "
                         f"{tuple(q.shape)} and {tuple(r.shape)}")
    inter = (p * q * r).sum(-1)
    union = (p.sum(-1) + q.sum(-1) + r.sum(-1) - (p * q).sum(-1) - (p * r).sum(-1)
             - (q * r).sum(-1) + inter)
    return (inter + eps) / (union + eps)


# ----------------------------------------------------------------- objects for trainers
METHODS: dict[str, type] = {}  # method name -> DistillLoss subclass, filled by subclassing


@dataclass(frozen=True)
class DistillLoss:
    """Public base of the loss objects the trainers take; subclass it to add a method.

    A subclass is a frozen dataclass whose fields are its hyperparameters
    (validated once in ``__post_init__``) with:

    * ``name`` (class variable): the method name; a subclass with a name is
      registered in :data:`METHODS`, so :func:`make_loss` and the CLI know it;
    * ``per_sample(student_logits, teacher_logits, labels, label_mask, **hparams)``
      (static method): the per-sample loss, broadcasting over leading dimensions;
    * ``stackable`` (class variable): the numeric fields that may differ between
      the students of one stacked sweep (passed as ``(k, 1, 1)`` tensors);
    * ``needs_teacher`` (class variable): False for a loss that ignores the teacher.

    ``loss(student_logits, teacher_logits, labels)`` is the mean over the batch.
    Adding a method touches this file plus its colour in :data:`skdtutor.viz.METHOD_COLORS`.
    """

    name: ClassVar[str] = ""
    stackable: ClassVar[tuple[str, ...]] = ()  # numeric fields that may differ inside one stacked sweep
    needs_teacher: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name:
            known = METHODS.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise ValueError(f"method name {name!r} is taken by {known.__qualname__}")
            METHODS[name] = cls

    @classmethod
    def hparam_names(cls) -> tuple[str, ...]:
        """The names of the hyperparameters (the dataclass fields)."""
        return tuple(f.name for f in fields(cls))

    def hparams(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def static_key(self) -> tuple:
        """Fields that must be equal for two losses to be trained in one stacked model."""
        return (type(self),) + tuple((k, v) for k, v in self.hparams().items()
                                     if k not in self.stackable)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, **hparams):
        raise NotImplementedError("a DistillLoss subclass defines per_sample")

    def __call__(self, student_logits, teacher_logits=None, labels=None, label_mask=None):
        return self.per_sample(student_logits, teacher_logits, labels, label_mask, **self.hparams()).mean()


@dataclass(frozen=True)
class CE(DistillLoss):
    """Plain cross-entropy on hard labels, :math:`\\mathrm{CE}(s, y)`; the teacher is ignored."""

    name: ClassVar[str] = "ce"
    needs_teacher: ClassVar[bool] = False

    @staticmethod
    def per_sample(student_logits, teacher_logits=None, labels=None, label_mask=None):
        if labels is None:
            raise ValueError("the CE loss needs labels; use KD/SKD with labels=None for unlabelled data")
        return _cross_entropy(student_logits, labels, label_mask).squeeze(-1)


@dataclass(frozen=True)
class KD(DistillLoss):
    """:func:`kd_loss` for the trainers."""

    T: float = 4.0
    gamma: float = 0.9
    name: ClassVar[str] = "kd"
    stackable: ClassVar[tuple[str, ...]] = ("T", "gamma")

    def __post_init__(self):
        check_temperature(self.T)
        _check_gamma(self.gamma)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma):
        kl = _kl_soft(student_logits, teacher_logits, T) * (T * T)
        ce = None if labels is None else _cross_entropy(student_logits, labels, label_mask)
        return _mix(kl, ce, gamma)


@dataclass(frozen=True)
class SKD(DistillLoss):
    """:func:`skd_loss` for the trainers."""

    T: float = 4.0
    gamma: float = 0.9
    multiplier: float = 2.0
    ce_on_raw: bool = False
    name: ClassVar[str] = "skd"
    stackable: ClassVar[tuple[str, ...]] = ("T", "gamma", "multiplier")

    def __post_init__(self):
        check_temperature(self.T)
        _check_gamma(self.gamma)
        _check_multiplier(self.multiplier)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma,
                   multiplier, ce_on_raw=False, eps=1e-7):
        s = _sphere(student_logits, multiplier, eps)
        t = _sphere(teacher_logits, multiplier, eps)
        kl = _kl_soft(s, t, T) * (T * T)
        ce = None if labels is None else _cross_entropy(student_logits if ce_on_raw else s,
                                                        labels, label_mask)
        return _mix(kl, ce, gamma)


@dataclass(frozen=True)
class DiceKD(DistillLoss):
    """:func:`dice_loss` for the trainers."""

    T: float = 4.0
    gamma: float = 0.9
    name: ClassVar[str] = "dice"
    stackable: ClassVar[tuple[str, ...]] = ("T", "gamma")

    def __post_init__(self):
        check_temperature(self.T)
        _check_gamma(self.gamma)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma,
                   eps=1e-7):
        dice = _soft_dice(_softmax(teacher_logits / T), _softmax(student_logits / T), eps)
        ce = None if labels is None else _cross_entropy(student_logits, labels, label_mask)
        return _mix(1.0 - dice, ce, gamma)


def make_loss(method: str, **hparams) -> DistillLoss:
    """Build a registered loss by method name (see :data:`METHODS`) with its own hyperparameters.

    ``make_loss("kd", T=2, gamma=0.5)``; float fields are converted to float. A
    hyperparameter the method does not have is a ValueError naming the ones it has.
    """
    key = method.lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[key]
    unknown = sorted(set(hparams) - set(cls.hparam_names()))
    if unknown:
        raise ValueError(f"the {key!r} loss has no hyperparameter(s) {unknown}; "
                         f"its hyperparameters are {list(cls.hparam_names())}")
    floats = {f.name for f in fields(cls) if f.type in ("float", float)}
    return cls(**{k: float(v) if k in floats and _is_real(v) else v for k, v in hparams.items()})
