"""The stacking engine: N students of one architecture as one model.

The members' parameters are stacked along a new leading dimension and applied
to inputs of shape ``(N, batch, ...)``: batched matrix products for ``Linear``
layers, one grouped convolution per ``Conv1d``/``Conv2d`` layer, and
``torch.vmap`` over ``torch.func.functional_call`` for other architectures
(:func:`stacked_forward`). :class:`~skdtutor.stacked_adam.StackedAdam` (re-exported here)
updates all members with one element-wise Adam step, so members never interact.
:func:`skdtutor.sweep.distill_sweep` trains with them.
"""
from __future__ import annotations

import copy
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .stacked_adam import StackedAdam  # noqa: F401 - re-exported (the engine's optimizer)

__all__ = ["StackedForward", "stacked_forward", "StackedAdam"]


class _StackedLinear(nn.Module):
    """nn.Linear of N members as one batched matrix product on ``(N, batch, in)`` inputs.

    Plain tensors, not Parameters. A layer with ``transposed=False`` holds its weight as
    ``(N, in, out)``, the transpose of nn.Linear's layout, so that neither the forward pass
    nor the weight gradient needs a transposed copy, and its bias as ``(N, 1, out)``,
    broadcast over the batch without a view per step. A layer with few outputs
    (``transposed=True``, see :data:`_SMALL_OUT`) keeps nn.Linear's ``(N, out', in)`` and an
    ``(N, out', 1)`` bias and computes the output as ``(N, out, batch)``, returned as a
    transposed view: a CPU product with fewer than 16 output columns takes a slow path,
    while one with few rows does not, and the loss's operations then run on contiguous
    rows of ``batch`` values instead of rows of 10. Its ``out' = 16`` rows are the ``out``
    real ones plus zero rows that get zero gradients (Adam and weight decay keep them at
    zero), so that every member's slice of every tensor Adam updates starts at the same
    16-float alignment: the vectorised kernel then does the same arithmetic for a member
    wherever it sits in the stack (with 10 rows, the bias of member j would start at
    float 10 j, and its last bits would depend on j).
    """

    def __init__(self, weight, bias, out, transposed=False):
        super().__init__()
        self.w, self.b, self.out, self.transposed = weight, bias, out, transposed

    def forward(self, x):
        x3 = x if x.dim() == 3 else x.reshape(self.w.shape[0], -1, x.shape[-1])
        if self.transposed:
            out = _TransposedProduct.apply(x3, self.w, self.b, self.out)
        else:
            out = torch.bmm(x3, self.w) if self.b is None else torch.baddbmm(self.b, x3, self.w)
        return out if x.dim() == 3 else out.reshape(*x.shape[:-1], self.out)


class _TransposedProduct(torch.autograd.Function):
    """``x @ w^T + b`` over the first ``out`` rows of ``w (N, out', in)`` and ``b (N, out', 1)`` (or
    None) for ``x (N, B, in)``, computed as ``(w @ x^T + b)^T`` (a view). Written out so that the
    input's gradient ``g @ w`` comes back in the input's own layout (autograd's would be a
    transposed view, which makes the ReLU's backward before it several times slower); the
    gradients of the rows past ``out`` are zero."""

    @staticmethod
    def forward(ctx, x, w, b, out):
        xt, w_used = x.transpose(1, 2), w[:, :out]
        y = torch.bmm(w_used, xt) if b is None else torch.baddbmm(b[:, :out], w_used, xt)
        ctx.save_for_backward(x, w_used)
        ctx.has_bias, ctx.pad = b is not None, w.shape[1] - out
        return y.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        # (N, out, B) in one layout whichever way autograd assembled the gradient (the loss's own
        # layout, or a plain one when the members' losses were sliced): the same kernels, so a
        # member's numbers do not depend on which other members share its stack
        grad_t = grad.transpose(1, 2).contiguous()
        grad_x = torch.bmm(grad_t.transpose(1, 2), w) if ctx.needs_input_grad[0] else None
        rows = (0, 0, 0, ctx.pad)  # zero gradients for the padding rows
        grad_w = F.pad(torch.bmm(grad_t, x), rows) if ctx.needs_input_grad[1] else None
        grad_b = F.pad(grad_t.sum(-1, keepdim=True), rows) if ctx.has_bias and ctx.needs_input_grad[2] \
            else None
        return grad_x, grad_w, grad_b, None


class _StackedConv(nn.Module):
    """Conv1d/Conv2d (zero padding) of N members as one grouped convolution.

    The members' channels are laid side by side (``groups = N * conv.groups``),
    which is what ``vmap`` does for a convolution, minus its overhead. Activations
    stay in the ``(batch, N, channels, ...)`` memory layout between convolutions,
    so consecutive convolutions need no copies.
    """

    def __init__(self, conv, weight, bias):
        super().__init__()
        self.w, self.b = weight, bias  # (N, C_out, C_in / groups, *k), (N, C_out) or None
        self.fn = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
        self.stride, self.padding, self.dilation, self.groups = \
            conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x):  # (N, B, C, L) or (N, B, C, H, W)
        n, b = x.shape[:2]
        xs = x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:])
        weight = self.w.reshape(n * self.w.shape[1], *self.w.shape[2:])
        bias = None if self.b is None else self.b.reshape(-1)
        out = self.fn(xs, weight, bias, self.stride, self.padding, self.dilation, n * self.groups)
        return out.view(b, n, -1, *out.shape[2:]).transpose(0, 1)  # (N, B, C_out, ...)


class _StackedFlatten(nn.Module):
    """nn.Flatten shifted by the leading member axis."""

    def __init__(self, flatten: nn.Flatten):
        super().__init__()
        self.start = flatten.start_dim + 1 if flatten.start_dim >= 0 else flatten.start_dim
        self.end = flatten.end_dim + 1 if flatten.end_dim >= 0 else flatten.end_dim

    def forward(self, x):
        return x.flatten(self.start, self.end)


_SMALL_OUT = 16  # a Linear layer with fewer outputs computes them transposed (see _StackedLinear)

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
                nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Identity)


def _explicit_stack(template: nn.Module, params: dict):
    """A copy of ``template`` whose layers apply stacked weights to ``(N, batch, ...)`` inputs.

    Returns ``(model, weights, to_module)``: the leaf tensors the model trains
    (``params`` re-laid-out where that saves a copy per step) and, per name, how
    to turn member ``j``'s slice back into the module's layout; or None when a
    layer is not one of the supported kinds (Linear, Conv1d/2d with zero padding, Flatten,
    element-wise activations, parameter-free containers).
    """
    model = copy.deepcopy(template)
    if any(True for _ in model.buffers()):
        return None
    weights = dict(params)
    to_module = {name: (lambda v: v) for name in params}
    replace = {}
    for name, mod in model.named_modules():
        prefix = f"{name}." if name else ""
        own = [k for k, _ in mod.named_parameters(recurse=False)]
        if isinstance(mod, nn.Linear):
            key, bkey = prefix + "weight", prefix + "bias"
            weight = params[key].detach()  # (N, out, in)
            out = weight.shape[1]
            if out < _SMALL_OUT and weight.device.type == "cpu":
                rows = (0, 0, 0, _SMALL_OUT - out)  # zero rows up to 16 (see _StackedLinear)
                weights[key] = F.pad(weight, rows).contiguous().requires_grad_()
                to_module[key] = lambda v, out=out: v[:out]
                if bkey in params:
                    weights[bkey] = F.pad(params[bkey].detach().unsqueeze(-1), rows).contiguous().requires_grad_()
                    to_module[bkey] = lambda v, out=out: v[:out, 0]
                replace[name] = _StackedLinear(weights[key], weights.get(bkey), out, transposed=True)
            else:
                weights[key] = weight.transpose(1, 2).contiguous().requires_grad_()  # (N, in, out)
                to_module[key] = lambda v: v.t()
                if bkey in params:
                    weights[bkey] = params[bkey].detach().unsqueeze(1).contiguous().requires_grad_()
                    to_module[bkey] = lambda v: v[0]
                replace[name] = _StackedLinear(weights[key], weights.get(bkey), out)
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            if mod.padding_mode != "zeros":
                return None
            replace[name] = _StackedConv(mod, params[prefix + "weight"], params.get(prefix + "bias"))
        elif isinstance(mod, nn.Flatten):
            replace[name] = _StackedFlatten(mod)
        elif own or (not list(mod.children()) and not isinstance(mod, _ELEMENTWISE)):
            return None  # a layer with its own weights or an unknown leaf: leave it to vmap
    for name, new in replace.items():
        if not name:
            return None  # the root itself is a bare layer; vmap handles that fine
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
    _relu_in_place(model)
    return model, weights, to_module


def _relu_in_place(model: nn.Module) -> None:
    """A ReLU right after a stacked Linear (not a transposed one) in a Sequential works in place.

    The product's output is a fresh tensor that nothing else reads (its backward needs
    only the inputs), so overwriting it saves one activation-sized tensor per layer and
    per step; the values are the same. (A transposed layer's output is a view made inside
    an autograd Function, which autograd does not let anyone modify in place.)
    """
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        layers = list(seq)
        for i in range(1, len(layers)):
            prev, mod = layers[i - 1], layers[i]
            if type(mod) is nn.ReLU and isinstance(prev, _StackedLinear) and not prev.transposed:
                seq[i] = nn.ReLU(inplace=True)


class StackedForward(NamedTuple):
    """The forward pass of stacked members (see :func:`stacked_forward`)."""

    forward: Callable      # inputs (N, batch, ...) -> logits (N, batch, classes)
    weights: dict          # the leaf tensors to optimise
    to_module: dict        # name -> f(weights[name][j]): member j's parameter in its module's layout
    kind: str              # "explicit" (batched layers) or "vmap"


def stacked_forward(students, params, buffers, probe) -> StackedForward:
    """The forward pass of the stacked ``students`` (``params``: their stacked parameters).

    The explicit form (batched matrix products and grouped convolutions, no vmap)
    is used when every layer is supported and it reproduces each member's own
    forward pass on ``probe``; otherwise ``torch.func.functional_call`` under ``torch.vmap``.
    """
    from torch.func import functional_call

    built = _explicit_stack(students[0], params)
    if built is not None:
        explicit, weights, to_module = built
        try:
            with torch.no_grad():
                xs = probe.unsqueeze(0).expand(len(students), *probe.shape).contiguous()
                got = explicit(xs)
                want = torch.stack([s(probe) for s in students])
            ok = got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-5)
        except Exception:  # noqa: BLE001 - any failure means: use the generic path
            ok = False
        if ok:
            return StackedForward(explicit, weights, to_module, "explicit")
    base = copy.deepcopy(students[0]).to("meta")

    def forward_one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    vmapped = torch.vmap(forward_one)
    return StackedForward(lambda xb: vmapped(params, buffers, xb), params,
                          {k: (lambda v: v) for k in params}, "vmap")
