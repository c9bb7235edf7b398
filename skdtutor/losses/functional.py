"""The distillation losses as pure functions on logits, each formula in its docstring.

Every public function takes logits of shape ``(batch, classes)``, validates them
(:mod:`skdtutor.losses.checks`) and returns the mean over the batch
(``soft_dice`` and ``dice3`` return one value per row).

The private formulas below take logits of shape ``(..., batch, classes)`` and
hyperparameters that are Python numbers or tensors broadcastable against the
logits (e.g. ``(n, 1, 1)`` for a stack of ``n`` students), skip the checks (a
training step never waits on a host sync) and return per-sample losses of shape
``(..., batch)``: the loss objects of :mod:`skdtutor.losses.objects` call the
``*_per_sample`` ones.

Notation: ``s`` student logits, ``t`` teacher logits, ``y`` integer labels,
``T`` temperature, ``gamma`` the weight of the distillation term,
``softmax(z / T)`` the softened distribution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import (check_gamma, check_labels, check_logits, check_multiplier, check_pair,
                     check_probabilities, check_temperature)

__all__ = ["soften", "kd_loss", "sphere", "skd_loss", "soft_dice", "dice_loss", "dice3",
           "ce_per_sample", "kd_per_sample", "skd_per_sample", "dice_per_sample"]


# ------------------------------------------------------------- broadcasting formulas
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


def ce_per_sample(student_logits, labels, label_mask=None):
    """Per-sample cross-entropy (masked where ``label_mask`` is 0), broadcasting; ``CE.per_sample``."""
    return _cross_entropy(student_logits, labels, label_mask).squeeze(-1)


def kd_per_sample(student_logits, teacher_logits, labels, label_mask, T, gamma):
    """Per-sample :func:`kd_loss` (no mean), broadcasting; ``KD.per_sample``."""
    kl = _kl_soft(student_logits, teacher_logits, T) * (T * T)
    ce = None if labels is None else _cross_entropy(student_logits, labels, label_mask)
    return _mix(kl, ce, gamma)


def skd_per_sample(student_logits, teacher_logits, labels, label_mask, T, gamma, multiplier,
                    ce_on_raw=False, eps=1e-7):
    """Per-sample :func:`skd_loss` (no mean), broadcasting; ``SKD.per_sample``."""
    s = _sphere(student_logits, multiplier, eps)
    t = _sphere(teacher_logits, multiplier, eps)
    kl = _kl_soft(s, t, T) * (T * T)
    ce = None if labels is None else _cross_entropy(student_logits if ce_on_raw else s,
                                                    labels, label_mask)
    return _mix(kl, ce, gamma)


def dice_per_sample(student_logits, teacher_logits, labels, label_mask, T, gamma, eps=1e-7):
    """Per-sample :func:`dice_loss` (no mean), broadcasting; ``DiceKD.per_sample``."""
    dice = _soft_dice(_softmax(teacher_logits / T), _softmax(student_logits / T), eps)
    ce = None if labels is None else _cross_entropy(student_logits, labels, label_mask)
    return _mix(1.0 - dice, ce, gamma)


# ------------------------------------------------------------------------ public API
def soften(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    r"""Softened class distribution :math:`\mathrm{softmax}(z / T)` along the last dimension.

    ``T = 1`` is the ordinary softmax; ``T > 1`` flattens the distribution,
    ``T < 1`` sharpens it. Shape in = shape out.
    """
    check_logits(logits)
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
    check_gamma(gamma)
    check_labels(labels, *student_logits.shape)
    return kd_per_sample(student_logits, teacher_logits, labels, None, T, gamma).mean()


def sphere(logits: torch.Tensor, multiplier: float = 2.0, eps: float = 1e-7) -> torch.Tensor:
    r"""Project each logit row onto a sphere: :math:`m\,(z - \bar z)/\sigma(z)`.

    :math:`\sigma` is the population standard deviation of the row, computed as
    :math:`\sqrt{\mathrm{var}(z) + \varepsilon}` (exactly
    ``F.layer_norm(z, (C,), eps=eps) * multiplier``, the form of Guo et al. 2020).
    Every projected row has mean 0 and length :math:`m\sqrt{C}` (up to eps), so
    the result no longer depends on how confident (how long) the logits were.
    A constant row maps to zeros, never NaN.
    """
    check_logits(logits)
    check_multiplier(multiplier)
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
    check_gamma(gamma)
    check_multiplier(multiplier)
    check_labels(labels, *student_logits.shape)
    return skd_per_sample(student_logits, teacher_logits, labels, None, T, gamma, multiplier,
                           ce_on_raw=ce_on_raw).mean()


def soft_dice(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""Soft Dice coefficient of two batches of probability vectors, one value per row.

    .. math::
        D(p, q) = \frac{2\sum_k p_k q_k + \varepsilon}{\sum_k p_k^2 + \sum_k q_k^2 + \varepsilon}

    (Milletari et al. 2016). It is 1 exactly when ``p == q`` and is symmetric;
    unlike KL it is bounded and weighs classes by their squared mass, so
    near-zero probabilities barely count. Returns shape ``(batch,)``.
    """
    check_probabilities(p, "p")
    check_probabilities(q, "q")
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
    check_gamma(gamma)
    check_labels(labels, *student_logits.shape)
    return dice_per_sample(student_logits, teacher_logits, labels, None, T, gamma).mean()


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
        check_probabilities(x, name)
    if not p.shape == q.shape == r.shape:
        raise ValueError(f"p, q and r must have the same shape, got {tuple(p.shape)}, "
                         f"{tuple(q.shape)} and {tuple(r.shape)}")
    inter = (p * q * r).sum(-1)
    union = (p.sum(-1) + q.sum(-1) + r.sum(-1) - (p * q).sum(-1) - (p * r).sum(-1)
             - (q * r).sum(-1) + inter)
    return (inter + eps) / (union + eps)
