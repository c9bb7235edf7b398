"""The stacked sweep's optimizer: :class:`StackedAdam`, Adam for N stacked members in one step.

Every member's slice of every tensor gets exactly the update of ``torch.optim.Adam(fused=True)``
on its own parameters (the update is element-wise, so members never interact), through one call
of torch's fused kernel per dtype and without the optimizer's per-step bookkeeping.
"""
from __future__ import annotations

import torch

from .steps import adam, fused_adam_ok

__all__ = ["StackedAdam"]


_FUSED_KERNEL: dict = {}  # device type -> whether torch's private fused Adam kernel runs there


def _fused_kernel_available(device) -> bool:
    """Whether the private ``torch._fused_adam_``/``torch._foreach_add_`` run on ``device``.

    Probed once per device type with a one-element step: older PyTorch lacks the entry
    points or (before 2.4) their CPU kernel; any failure means the public Adam is used.
    """
    kind = torch.device(device).type
    if kind not in _FUSED_KERNEL:
        try:
            p, g = torch.zeros(1, device=device), torch.ones(1, device=device)
            m, v, step = torch.zeros_like(p), torch.zeros_like(p), torch.zeros((), device=device)
            torch._foreach_add_([step], 1)
            torch._fused_adam_([p], [g], [m], [v], [], [step], amsgrad=False, lr=0.1, beta1=0.9,
                               beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False,
                               grad_scale=None, found_inf=None)
            _FUSED_KERNEL[kind] = bool(torch.isfinite(p).all()) and p.item() != 0.0
        except Exception:  # noqa: BLE001 - missing, unimplemented or changed: use the public Adam
            _FUSED_KERNEL[kind] = False
    return _FUSED_KERNEL[kind]


class StackedAdam:
    """Adam for the stacked sweep: exactly the arithmetic of ``torch.optim.Adam(fused=True)``
    (the same fused kernel with the same arguments, one call per dtype) without its per-step
    Python bookkeeping, and with one step counter that every parameter reads.

    ``step(loss)`` computes the gradients with ``torch.autograd.grad`` and applies
    one update. The fused kernel is used under the rule of :func:`skdtutor.steps.adam`
    (:func:`~skdtutor.steps.fused_adam_ok`); where it does not apply, or PyTorch lacks
    its private entry point, the public ``torch.optim.Adam`` of :func:`~skdtutor.steps.adam`
    does the update.
    """

    def __init__(self, params, lr, weight_decay, device):
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay
        self.optimizer = None
        if not (fused_adam_ok(self.params, device) and _fused_kernel_available(device)):
            self.optimizer = adam(self.params, lr, weight_decay, device)
            return
        groups: dict = {}
        for i, p in enumerate(self.params):
            groups.setdefault(p.dtype, []).append(i)
        self.groups = list(groups.values())
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # All parameters take every step: one counter, passed once per parameter, one add per step.
        self.step_count = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
        self.steps = [self.step_count] * len(self.params)

    def step(self, loss):
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            return
        grads = [g if g.is_contiguous() else g.contiguous()
                 for g in torch.autograd.grad(loss, self.params)]
        with torch.no_grad():
            self.step_count.add_(1)
            for idx in self.groups:
                def pick(xs):
                    return xs if len(idx) == len(xs) else [xs[i] for i in idx]

                torch._fused_adam_(pick(self.params), pick(grads), pick(self.exp_avg),
                                   pick(self.exp_avg_sq), [], pick(self.steps), amsgrad=False,
                                   lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=self.weight_decay,
                                   eps=1e-8, maximize=False, grad_scale=None, found_inf=None)
