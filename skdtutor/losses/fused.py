"""The KD family with a hand-written gradient: the stacked sweep's fast path.

KD, SKD and CE share one core, a soft cross-entropy against a fixed target plus a
hard one against the labels. For student logits ``s``, a teacher distribution
``p = softmax(t / T)`` with ``h = sum_k p_k log p_k`` (both computed once per
epoch by :func:`teacher_terms`), labels ``y`` and a label mask ``m``:

.. math::
    L_i = \\gamma T^2 \\big(h_i - \\sum_k p_{ik} \\log \\mathrm{softmax}(s_i / T)_k\\big)
          + (1 - \\gamma)\\, m_i\\, \\mathrm{CE}(s_i, y_i)

which is ``kd_per_sample`` (the KL divergence is ``h - sum p log q``), and its gradient in
closed form:

.. math::
    \\partial L_i / \\partial s_i = \\gamma T \\big(\\mathrm{softmax}(s_i / T) - p_i\\big)
          + (1 - \\gamma)\\, m_i \\big(\\mathrm{softmax}(s_i) - \\mathrm{onehot}(y_i)\\big)

Autograd would build about twenty nodes for the same loss; :class:`SoftCrossEntropy` is
one node with a handful of element-wise operations each way, which is what a sweep of
small students spends its time on. The values are those of
:mod:`skdtutor.losses.functional` up to float rounding (the tests check both the value
and, with ``gradcheck``, the gradient).
"""
from __future__ import annotations

import torch

from .functional import _log_softmax

__all__ = ["teacher_terms", "soft_cross_entropy", "SoftCrossEntropy"]


def _per_row(value):
    """A hyperparameter shaped for per-sample values: ``(k, 1, 1)`` -> ``(k, 1)``; numbers stay."""
    return value.squeeze(-1) if isinstance(value, torch.Tensor) and value.dim() else value


def teacher_terms(teacher_logits: torch.Tensor, T):
    """``(p, h)``: the softened teacher ``softmax(t / T)`` and ``sum_k p_k log p_k`` per row.

    Shapes ``(..., n, classes)`` and ``(..., n)``; ``T`` a number or ``(k, 1, 1)``.
    """
    log_p = _log_softmax(teacher_logits / T)
    p = log_p.exp()
    return p, (p * log_p).sum(-1)


class SoftCrossEntropy(torch.autograd.Function):
    """The per-sample loss of the module docstring as one autograd node.

    ``forward(ctx, s_soft, s_hard, p, h, labels, mask, T, gamma)``: the soft term reads
    ``s_soft`` (skipped when ``p`` is None), the hard term ``s_hard`` (skipped when
    ``labels`` is None); they may be the same tensor. ``T`` and ``gamma`` are numbers or
    ``(k, 1, 1)`` tensors. Returns the per-sample loss, shape ``(..., batch)``.
    """

    @staticmethod
    def forward(ctx, s_soft, s_hard, p, h, labels, mask, T, gamma):
        out, log_q_soft, log_q_hard, hard_weight = None, None, None, None
        if p is not None:
            log_q_soft = _log_softmax(s_soft / T)
            out = (h - (p * log_q_soft).sum(-1)) * (_per_row(gamma) * _per_row(T) ** 2)
        if labels is not None:
            log_q_hard = _log_softmax(s_hard)
            nll = log_q_hard.gather(-1, labels.unsqueeze(-1)).squeeze(-1).neg_()
            hard_weight = 1.0 - _per_row(gamma) if p is not None else 1.0
            if mask is not None:
                hard_weight = mask.to(nll.dtype) * hard_weight
            nll = nll * hard_weight
            out = nll if out is None else out + nll
        ctx.soft, ctx.hard = p is not None, labels is not None
        ctx.T, ctx.gamma, ctx.hard_weight = T, gamma, hard_weight
        ctx.save_for_backward(log_q_soft, p, log_q_hard, labels)
        return out

    @staticmethod
    def backward(ctx, grad):
        log_q_soft, p, log_q_hard, labels = ctx.saved_tensors
        grad_soft = grad_hard = None
        g = grad.unsqueeze(-1)
        if ctx.soft:
            grad_soft = log_q_soft.exp().sub_(p).mul_(g * (ctx.gamma * ctx.T))
        if ctx.hard:
            q = log_q_hard.exp()
            q.scatter_add_(-1, labels.unsqueeze(-1), torch.full_like(q[..., :1], -1.0))  # q - onehot(y)
            weight = ctx.hard_weight
            grad_hard = q.mul_(g * (weight.unsqueeze(-1) if isinstance(weight, torch.Tensor) else weight))
        # the same tensor passed as both inputs (KD, SKD) gets the sum of the two: autograd adds them
        return grad_soft, grad_hard, None, None, None, None, None, None


def soft_cross_entropy(s_soft, s_hard, p, h, labels, label_mask, T, gamma):
    """:class:`SoftCrossEntropy` applied (the per-sample loss of the module docstring)."""
    return SoftCrossEntropy.apply(s_soft, s_hard, p, h, labels, label_mask, T, gamma)
