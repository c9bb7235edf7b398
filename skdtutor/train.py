"""Trainers: a teacher on hard labels, a student by distillation, and whole sweeps at once.

All three share one design: the training split lives on the device as tensors
and is batched by index (no DataLoader); without augmentation the teacher's
logits are computed once and cached (no teacher forward per batch); nothing
leaves the device inside an epoch, and metrics are logged once per epoch.

* :func:`train_teacher` — cross-entropy training, with checkpoint and resume.
* :func:`distill` — one student, any loss object of :mod:`skdtutor.losses`.
* :func:`distill_sweep` — N students of one architecture (different seeds,
  temperatures, gammas, multipliers, methods) stacked into one model: one
  forward pass, one backward pass and one optimizer step update all N. Each
  member follows exactly the arithmetic of its own :func:`distill` run with the
  same seed (same initial weights, same batch order), so the results match the
  sequential runs up to float rounding.

Where the time goes in a step of a small model on a CPU is mostly fixed
per-operation overhead, not arithmetic, so the trainers keep the number of
operations per step at the minimum: the epoch's batches are gathered once per
epoch (one indexing per tensor, then free slices), the loss object's formula is
called directly, Adam is the fused single-kernel implementation where PyTorch
has one, and the training loss and accuracy are reduced once per epoch.
``benchmarks/bench_train.py`` measures all this against the PyTorch tutorial's
loop and against a bare minimal loop.

Reproducibility: the batch order comes from a ``torch.Generator`` seeded with
``seed``; build the model under ``torch.manual_seed(seed)`` (or
:func:`skdtutor.models.build_model` with ``seed=``) to fix its initial weights.

Threads: on a small CPU, tiny models train fastest with one intra-op thread
(``torch.set_num_threads(1)``), especially when other processes share the
cores. The trainers never change the thread setting themselves; pass
``threads=`` to one of them to run it under a temporary setting (restored on
return).
"""
from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from . import metrics
from .losses import CE, _Loss

__all__ = ["History", "TeacherLogits", "resolve_device", "predict",
           "compute_teacher_logits", "train_teacher", "distill", "distill_sweep", "SweepMember",
           "stackable", "num_threads"]

# Gather the whole epoch's batches at once (x[perm]) when the copy is at most this
# many bytes; above it, every step indexes its own batch (same numbers, less memory).
_GATHER_BYTES = 256 * 2 ** 20


# --------------------------------------------------------------------------- records
@dataclass
class History:
    """What a run produced: one row per epoch, the settings, and the trained model."""

    rows: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def df(self) -> pd.DataFrame:
        """One row per epoch: ``epoch``, ``train_loss``, ``train_acc`` (running values over the
        epoch) and, on evaluated epochs, ``val_acc`` and the test metrics ``test_acc``,
        ``test_nll``, ``test_ece``, ``test_max_prob``, ``test_logit_norm``, ``test_entropy``
        (and ``test_agreement`` with the teacher when there is one)."""
        return pd.DataFrame(self.rows)

    @property
    def final(self) -> dict:
        """The last row, merged with the settings."""
        return {**self.config, **(self.rows[-1] if self.rows else {})}


@dataclass
class TeacherLogits:
    """A teacher's logits on every split, computed once (see :func:`compute_teacher_logits`)."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA GPU is available; use device='cpu' or 'auto'")
    return device


@contextlib.contextmanager
def num_threads(n: int | None):
    """Run a block under ``torch.set_num_threads(n)`` and restore the previous setting.

    ``n=None`` changes nothing. One thread is usually fastest for the book's small
    models on a CPU (each operation is too small to split, and idle-spinning
    OpenMP workers compete with other processes)::

        with train.num_threads(1):
            train.distill(student, teacher, data, KD(T=4))
    """
    if n is None:
        yield
        return
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2048, device="auto") -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, returned on the CPU."""
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval().to(device)
    out = torch.cat([model(x[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def compute_teacher_logits(teacher: nn.Module, data, device="auto") -> TeacherLogits:
    """The teacher's logits on the train, validation and test splits (eval mode, no grad)."""
    return TeacherLogits(*(predict(teacher, getattr(data, f"x_{s}"), device=device)
                           for s in ("train", "val", "test")))


# ------------------------------------------------------------------------- internals
def _check_common(data, epochs, batch_size, lr):
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        if not hasattr(data, attr):
            raise ValueError(f"data must be a DataBundle from skdtutor.data.load (missing {attr!r})")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")


def _check_mask(labelled, n):
    if labelled is None:
        return None
    labelled = torch.as_tensor(labelled)
    if labelled.dtype != torch.bool or labelled.shape != (n,):
        raise ValueError(f"labelled must be a boolean mask of shape ({n},) over the training split, "
                         f"got dtype {labelled.dtype} and shape {tuple(labelled.shape)}")
    return labelled


def _evaluate(logits_val, logits_test, data, teacher: TeacherLogits | None) -> dict:
    row = {"val_acc": metrics.accuracy(logits_val, data.y_val) if len(data.y_val) else float("nan")}
    row.update(metrics.summarize(logits_test, data.y_test,
                                 None if teacher is None else teacher.test))
    return row


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _save_checkpoint(path, **state):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint


def _adam(params, lr, weight_decay, device) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where PyTorch supports it (CPU and CUDA).

    The fused kernel does the same element-wise arithmetic as the default
    implementation in one call instead of a dozen per parameter; the trainers
    and the sweep use the same variant, so their results stay comparable.
    """
    params = list(params)
    if device.type in ("cpu", "cuda") and all(p.dtype in (torch.float32, torch.float64, torch.float16,
                                                           torch.bfloat16) for p in params):
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):  # pragma: no cover - older builds without fused CPU Adam
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _loss_caller(loss_fn: _Loss):
    """The loss as ``f(logits, teacher, labels, mask) -> scalar`` with the hyperparameters bound
    once (the per-call ``hparams()`` dict is skipped when the class keeps the default ``__call__``)."""
    if type(loss_fn).__call__ is not _Loss.__call__:
        return loss_fn
    per_sample, hp = type(loss_fn).per_sample, loss_fn.hparams()

    def call(logits, teacher, labels, mask):
        return per_sample(logits, teacher, labels, mask, **hp).mean()

    return call


def _batch_sizes(n, batch_size, device):
    return torch.tensor([min(batch_size, n - s) for s in range(0, n, batch_size)],
                        dtype=torch.float32, device=device)


def _fit(model, data, loss_fn: _Loss, epochs, *, teacher: TeacherLogits | None = None,
         teacher_model: nn.Module | None = None, augment=None, labelled=None, lr=1e-3,
         weight_decay=0.0, batch_size=128, seed=0, device="auto", progress=False,
         checkpoint=None, resume=False, stop_after=None, eval_every=1, callback=None,
         desc="train") -> History:
    _check_common(data, epochs, batch_size, lr)
    device = resolve_device(device)
    n = len(data.y_train)
    labelled = _check_mask(labelled, n)
    model.to(device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    t_train = None if teacher is None else teacher.train.to(device)
    mask = None if labelled is None else labelled.to(device)
    optimizer = _adam(model.parameters(), lr, weight_decay, device)
    generator = torch.Generator().manual_seed(seed)
    config = {"method": loss_fn.name, **loss_fn.hparams(), "seed": seed, "epochs": epochs,
              "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay}
    history = History(config=config, model=model)
    start = 0
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["config"] != config:
            raise ValueError(f"checkpoint {str(checkpoint)!r} was written with other settings "
                             f"({state['config']}); delete it or pass the same settings")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        history.rows = state["rows"]
        start = state["epoch"]
    compute_loss = _loss_caller(loss_fn)
    sizes = _batch_sizes(n, batch_size, device)
    gather = x.element_size() * x.numel() <= _GATHER_BYTES
    bounds = [(s, s + batch_size) for s in range(0, n, batch_size)]
    bar = _progress(epochs - start, desc, progress)
    for epoch in range(start, epochs):
        model.train()
        perm = torch.randperm(n, generator=generator).to(device, non_blocking=True)
        # the epoch's labels, teacher logits and mask in batch order: one gather, then slices
        ye = y.index_select(0, perm)
        te = None if t_train is None or teacher_model is not None else t_train.index_select(0, perm)
        me = None if mask is None else mask.index_select(0, perm)
        xe = x.index_select(0, perm) if gather else None
        losses, preds = [], []
        for s, e in bounds:
            xb = xe[s:e] if gather else x[perm[s:e]]
            if augment is not None:
                xb = augment(xb, generator)
            logits = model(xb)
            if teacher_model is not None:  # augmentation: the teacher must see the same view
                with torch.no_grad():
                    tb = teacher_model(xb)
            else:
                tb = None if te is None else te[s:e]
            loss = compute_loss(logits, tb, ye[s:e], None if me is None else me[s:e])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            preds.append(logits.argmax(-1))
        # one reduction (and one host sync) per epoch
        loss_sum = (torch.stack(losses).float() * sizes).sum()
        correct = (torch.cat(preds) == ye).sum()
        row = {"epoch": epoch + 1, "train_loss": (loss_sum / n).item(), "train_acc": (correct / n).item()}
        if (epoch + 1) % max(eval_every, 1) == 0 or epoch + 1 == epochs:
            row.update(_evaluate(predict(model, data.x_val, device=device),
                                 predict(model, data.x_test, device=device), data, teacher))
        history.rows.append(row)
        if callback is not None:
            callback(epoch + 1, model)
        if progress:
            bar.update(1)
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row.get('test_acc', float('nan')):.3f}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model=model.state_dict(), optimizer=optimizer.state_dict(),
                             generator=generator.get_state(), rows=history.rows, epoch=epoch + 1,
                             config=config)
        if stop_after is not None and epoch + 1 - start >= stop_after:
            break
    bar.close()
    model.eval()
    return history


# ---------------------------------------------------------------------------- public
def train_teacher(model: nn.Module, data, epochs: int = 30, *, lr: float = 1e-3,
                  weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0,
                  device="auto", progress: bool = True, augment: Callable | None = None,
                  checkpoint=None, resume: bool = False, stop_after: int | None = None,
                  eval_every: int = 1, callback: Callable | None = None,
                  threads: int | None = None) -> History:
    """Train ``model`` in place with cross-entropy on the training split.

    Parameters
    ----------
    model : any ``nn.Module`` mapping ``data.x_train`` batches to logits.
    data : a :class:`~skdtutor.data.DataBundle`.
    epochs, lr, weight_decay, batch_size : Adam with a constant learning rate.
    seed : seed of the batch order (build the model under the same seed for full reproducibility).
    device : ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    progress : show one tqdm progress bar.
    augment : optional ``f(x_batch, generator) -> x_batch`` (e.g. :func:`skdtutor.data.flip_crop`).
    checkpoint : path of a checkpoint written after every epoch (model, optimizer,
        RNG state, history). With ``resume=True`` an existing checkpoint is
        loaded first and training continues from its epoch; the final weights
        equal those of an uninterrupted run. Resuming with other settings raises ValueError.
    stop_after : stop after this many epochs in this call (resume later).
    eval_every : evaluate every k epochs (the last one always); evaluation is the
        only per-epoch cost that grows with the test set, so sweeps that only need
        the final numbers pass ``eval_every=epochs``.
    callback : optional ``f(epoch, model)`` called after every epoch (e.g. to keep snapshots).
    threads : run under ``torch.set_num_threads(threads)``, restored afterwards
        (``None``, the default, leaves the setting alone; see :func:`num_threads`).

    Returns
    -------
    History; ``history.df`` has one row per epoch.
    """
    with num_threads(threads):
        return _fit(model, data, CE(), epochs, augment=augment, lr=lr, weight_decay=weight_decay,
                    batch_size=batch_size, seed=seed, device=device, progress=progress,
                    checkpoint=checkpoint, resume=resume, stop_after=stop_after,
                    eval_every=eval_every, callback=callback, desc="teacher")


def distill(student: nn.Module, teacher, data, loss: _Loss, epochs: int = 30, *,
            lr: float = 1e-3, weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0,
            device="auto", progress: bool = True, labelled=None, augment: Callable | None = None,
            checkpoint=None, resume: bool = False, stop_after: int | None = None,
            eval_every: int = 1, threads: int | None = None) -> History:
    """Train ``student`` in place against a frozen teacher with ``loss``.

    Parameters
    ----------
    student : the model to train.
    teacher : an ``nn.Module`` (kept in eval mode, never updated) or precomputed
        :class:`TeacherLogits`. Without augmentation its logits are computed once
        per call (pass :class:`TeacherLogits` to share them between calls).
    loss : a loss object, e.g. ``KD(T=4, gamma=0.9)``, ``SKD(...)``, ``DiceKD(...)``,
        ``CE()`` (or :func:`skdtutor.losses.make_loss`).
    labelled : optional boolean mask over the training split; samples where it is
        False are treated as unlabelled (only the distillation term applies to them).
    Other parameters as in :func:`train_teacher`.
    """
    if not isinstance(loss, _Loss):
        raise ValueError(f"loss must be a loss object such as skdtutor.losses.KD(T=4.0), got {loss!r}")
    with num_threads(threads):
        teacher_model = None
        if isinstance(teacher, nn.Module):
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            if augment is not None:
                teacher_model = teacher.to(resolve_device(device))
            teacher = compute_teacher_logits(teacher, data, device=device)
        elif not isinstance(teacher, TeacherLogits) and teacher is not None:
            raise ValueError("teacher must be an nn.Module or TeacherLogits from compute_teacher_logits")
        if teacher is None and loss.needs_teacher:
            raise ValueError(f"the {loss.name!r} loss needs a teacher")
        return _fit(student, data, loss, epochs, teacher=teacher, teacher_model=teacher_model,
                    augment=augment, labelled=labelled, lr=lr, weight_decay=weight_decay,
                    batch_size=batch_size, seed=seed, device=device, progress=progress,
                    checkpoint=checkpoint, resume=resume, stop_after=stop_after,
                    eval_every=eval_every, desc=f"distill {loss.name}")


# ------------------------------------------------------------------------------ sweeps
@dataclass(frozen=True)
class SweepMember:
    """One student of a sweep: its loss and its seed (initial weights and batch order)."""

    loss: _Loss
    seed: int = 0


def _group_members(members: Sequence[SweepMember]):
    """Order the members so that losses computed together are contiguous.

    Returns ``(order, groups)``: ``order[j]`` is the member at stacked position
    ``j``; each group is ``(start, stop, per_sample, hparams)`` over stacked
    positions, where a hyperparameter that differs inside the group is a tensor
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
        groups.append((len(order), len(order) + len(indices), type(first).per_sample, hp))
        order += indices
    return order, groups


class _Stacked(nn.Module):
    """Base of the layers that apply N members' weights to inputs of shape ``(N, batch, ...)``."""


class _StackedLinear(_Stacked):
    def __init__(self, weight_t, bias, out_features):
        super().__init__()
        # Plain tensors, not Parameters. weight_t is (N, in, out'), the transpose of nn.Linear's
        # layout, so that neither the forward pass nor the weight gradient needs a transposed
        # copy; out' >= out_features when the layer is padded (see _explicit_stack).
        self.w, self.b, self.out = weight_t, bias, out_features

    def forward(self, x):
        n, shape = self.w.shape[0], x.shape
        x3 = x.reshape(n, -1, shape[-1])
        out = torch.bmm(x3, self.w) if self.b is None else torch.baddbmm(self.b.unsqueeze(1), x3, self.w)
        if out.shape[-1] != self.out:
            out = out[..., :self.out]
        return out.view(*shape[:-1], self.out) if out.is_contiguous() else \
            out.reshape(*shape[:-1], self.out)


class _StackedConv(_Stacked):
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


class _StackedFlatten(_Stacked):
    def __init__(self, flatten: nn.Flatten):
        super().__init__()
        self.start = flatten.start_dim + 1 if flatten.start_dim >= 0 else flatten.start_dim
        self.end = flatten.end_dim + 1 if flatten.end_dim >= 0 else flatten.end_dim

    def forward(self, x):
        return x.flatten(self.start, self.end)


_SMALL_OUT = 16  # see _explicit_stack

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
            w_t = params[key].detach().transpose(1, 2)  # (N, in, out)
            out = w_t.shape[-1]
            pad = _SMALL_OUT - out if out < _SMALL_OUT and w_t.device.type == "cpu" else 0
            # CPU matrix products with fewer than 16 output columns (a 10-class head) take a
            # slow path, 2-4x slower than with 16: zero columns are appended and the output
            # sliced. They get zero gradients, so Adam (and weight decay) keep them at zero.
            weights[key] = F.pad(w_t, (0, pad)).contiguous().requires_grad_()
            to_module[key] = lambda v, out=out: v[:, :out].t()
            if bkey in params:
                weights[bkey] = F.pad(params[bkey].detach(), (0, pad)).contiguous().requires_grad_()
                to_module[bkey] = lambda v, out=out: v[:out]
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
    return model, weights, to_module


def _stacked_forward(students, params, buffers, probe):
    """The forward pass of the stacked members.

    Returns ``(forward, weights, to_module, kind)``: ``forward(x)`` maps inputs
    ``(N, batch, ...)`` to logits ``(N, batch, classes)``; ``weights`` are the
    leaf tensors to optimise and ``to_module[name](weights[name][j])`` is member
    ``j``'s parameter in its module's layout. The explicit form (batched matrix
    products and grouped convolutions, no vmap; ``kind="explicit"``) is used when
    every layer is supported
    and it reproduces each member's own forward pass on ``probe``; otherwise
    ``torch.func.functional_call`` under ``torch.vmap`` (``kind="vmap"``).
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
            return explicit, weights, to_module, "explicit"
    base = copy.deepcopy(students[0]).to("meta")

    def forward_one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    vmapped = torch.vmap(forward_one)
    return (lambda xb: vmapped(params, buffers, xb)), params, {k: (lambda v: v) for k in params}, "vmap"


class _StackedAdam:
    """Adam for the stacked sweep: exactly the arithmetic of ``torch.optim.Adam(fused=True)``
    (the same fused kernel, called the same way) without its per-step Python bookkeeping.

    ``step(loss)`` computes the gradients with ``torch.autograd.grad`` and applies
    one update. Falls back to :func:`_adam` where the fused kernel is unavailable.
    """

    def __init__(self, params, lr, weight_decay, device):
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay
        dtypes = {p.dtype for p in self.params}
        self.fused = (hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda")
                      and len(dtypes) == 1 and dtypes <= {torch.float32, torch.float64})
        if not self.fused:
            self.optimizer = _adam(self.params, lr, weight_decay, device)
            return
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def step(self, loss):
        if not self.fused:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            return
        grads = [g if g.is_contiguous() else g.contiguous()
                 for g in torch.autograd.grad(loss, self.params)]
        with torch.no_grad():
            torch._foreach_add_(self.steps, 1)
            torch._fused_adam_(self.params, grads, self.exp_avg, self.exp_avg_sq, [], self.steps,
                               amsgrad=False, lr=self.lr, beta1=0.9, beta2=0.999,
                               weight_decay=self.weight_decay, eps=1e-8, maximize=False,
                               grad_scale=None, found_inf=None)


def distill_sweep(make_student: Callable[[], nn.Module], teacher, data,
                  members: Sequence[SweepMember], epochs: int = 30, *, lr: float = 1e-3,
                  weight_decay: float = 0.0, batch_size: int = 128, device="auto",
                  progress: bool = True, labelled=None, eval_every: int = 1,
                  threads: int | None = None) -> list[History]:
    """Train many students of one architecture as one stacked model; one History per member.

    ``make_student()`` must build the architecture; member ``i`` is initialised by
    calling it under ``torch.manual_seed(members[i].seed)`` and shuffles with a
    generator seeded the same way, exactly like
    ``torch.manual_seed(seed); distill(make_student(), teacher, data, loss, seed=seed)``.
    The members' parameters are stacked along a new leading dimension; the
    forward pass runs all members at once (batched matrix products for
    ``Linear`` layers, one grouped convolution per ``Conv1d``/``Conv2d`` layer,
    ``torch.vmap`` over ``torch.func.functional_call`` for other architectures),
    and one Adam step (element-wise, so members never interact) updates them
    all. Members with the same seed share one shuffled copy of the inputs.
    Losses of different kinds are grouped; within a group the temperature,
    gamma and multiplier are tensors with one entry per member.

    Each member does the arithmetic of its sequential :func:`distill` run: in
    float64 the weights agree to ~1e-16, in float32 to ~1e-7 after a few
    epochs (the tests check 1e-5). Like any change of summation order (another
    BLAS kernel, another Adam implementation), last-bit differences can grow
    over long float32 runs for some seeds; the runs are then different samples
    of the same distribution, not different methods.

    Speed: on a CPU the gain is largest for small fully connected students
    (many tiny operations become a few larger ones); convolutional students
    are already compute-bound there and gain little. On a GPU both gain.

    The architecture must be free of batch norm and dropout (true of
    :class:`~skdtutor.models.MLP` and :class:`~skdtutor.models.CNN`; see
    :func:`stackable`); use sequential :func:`distill` calls otherwise.
    Returns the histories in the order of ``members``; ``history.model`` is the
    member's trained model. ``threads`` as in :func:`train_teacher`.
    """
    members = list(members)
    if not members:
        raise ValueError("members is empty; pass at least one SweepMember(loss, seed)")
    for m in members:
        if not isinstance(m, SweepMember) or not isinstance(m.loss, _Loss):
            raise ValueError(f"members must be SweepMember(loss, seed) items, got {m!r}")
    _check_common(data, epochs, batch_size, lr)
    with num_threads(threads):
        return _sweep(make_student, teacher, data, members, epochs, lr=lr,
                      weight_decay=weight_decay, batch_size=batch_size, device=device,
                      progress=progress, labelled=labelled, eval_every=eval_every)


def _sweep(make_student, teacher, data, members, epochs, *, lr, weight_decay, batch_size, device,
           progress, labelled, eval_every):
    device = resolve_device(device)
    n = len(data.y_train)
    labelled = _check_mask(labelled, n)
    students = []
    for m in members:
        torch.manual_seed(m.seed)
        students.append(make_student().to(device))
    for s in students:
        for mod in s.modules():
            if isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
                raise ValueError(f"distill_sweep cannot stack {type(mod).__name__} layers; "
                                 "train these students with sequential distill() calls")
    if isinstance(teacher, nn.Module):
        teacher = compute_teacher_logits(teacher, data, device=device)
    elif not isinstance(teacher, TeacherLogits) and teacher is not None:
        raise ValueError("teacher must be an nn.Module or TeacherLogits from compute_teacher_logits")
    if teacher is None and any(m.loss.needs_teacher for m in members):
        raise ValueError("these losses need a teacher")

    order, groups = _group_members(members)
    stacked = [students[i] for i in order]  # position j holds member order[j]
    n_members = len(members)
    params = {name: torch.stack([dict(s.named_parameters())[name].detach() for s in stacked])
              .requires_grad_() for name, _ in stacked[0].named_parameters()}
    buffers = {name: torch.stack([dict(s.named_buffers())[name] for s in stacked])
               for name, _ in stacked[0].named_buffers()}
    x, y = data.x_train.to(device), data.y_train.to(device)
    forward, weights, to_module, _kind = _stacked_forward(stacked, params, buffers, x[:4])
    groups = [(a, b, fn, {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in hp.items()})
              for a, b, fn, hp in groups]
    optimizer = _StackedAdam(weights.values(), lr, weight_decay, device)
    # Members with the same seed shuffle identically: one generator and one gathered copy of
    # the inputs per distinct seed ("stream"), expanded to the members batch by batch.
    seeds = list(dict.fromkeys(members[i].seed for i in order))
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    stream = torch.tensor([seeds.index(members[i].seed) for i in order], device=device)
    shared = len(seeds) < n_members
    t_train = None if teacher is None else teacher.train.to(device)
    mask = None if labelled is None else labelled.to(device)
    sizes = _batch_sizes(n, batch_size, device)
    gather = len(seeds) * x.element_size() * x.numel() <= _GATHER_BYTES
    bounds = [(s, s + batch_size) for s in range(0, n, batch_size)]
    histories = [History(config={"method": m.loss.name, **m.loss.hparams(), "seed": m.seed,
                                 "epochs": epochs, "batch_size": batch_size, "lr": lr,
                                 "weight_decay": weight_decay}) for m in members]

    def loss_of(logits, tb, yb, mb):  # per-member mean loss, shape (N,)
        parts = []
        for a, b, per_sample, hp in groups:
            whole = a == 0 and b == n_members
            sl = slice(None) if whole else slice(a, b)
            parts.append(per_sample(logits[sl], None if tb is None else tb[sl], yb[sl],
                                    None if mb is None else mb[sl], **hp).mean(-1))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @torch.no_grad()
    def stacked_predict(xs):
        out = []
        for i in range(0, len(xs), 2048):
            chunk = xs[i:i + 2048].to(device)
            out.append(forward(chunk.unsqueeze(0).expand(n_members, *chunk.shape)).float())
        return torch.cat(out, dim=1).cpu()

    bar = _progress(epochs, f"sweep x{n_members}", progress)
    for epoch in range(epochs):
        stream_perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        perms = stream_perms.index_select(0, stream) if shared else stream_perms  # (members, n)
        flat = perms.view(-1)
        ye = y.index_select(0, flat).view(n_members, n)
        te = None if t_train is None else t_train.index_select(0, flat).view(n_members, n, -1)
        me = None if mask is None else mask.index_select(0, flat).view(n_members, n)
        # the inputs once per stream (S, n, ...); a batch is expanded to the members below
        xe = x.index_select(0, stream_perms.view(-1)).view(len(seeds), *x.shape) if gather else None
        losses, preds = [], []
        for s, e in bounds:
            if not gather:
                xb = x[perms[:, s:e]]
            elif shared:
                xb = xe[:, s:e].index_select(0, stream)
            else:
                xb = xe[:, s:e]
            logits = forward(xb)  # (members, batch, classes)
            per_member = loss_of(logits, None if te is None else te[:, s:e], ye[:, s:e],
                                 None if me is None else me[:, s:e])
            optimizer.step(per_member.sum())  # members are independent: each gets its own gradient
            losses.append(per_member.detach())
            preds.append(logits.argmax(-1))
        train_loss = ((torch.stack(losses, 1).float() * sizes).sum(1) / n).tolist()
        train_acc = ((torch.cat(preds, 1) == ye).sum(1) / n).tolist()
        evaluate = (epoch + 1) % max(eval_every, 1) == 0 or epoch + 1 == epochs
        if evaluate:
            val_logits, test_logits = stacked_predict(data.x_val), stacked_predict(data.x_test)
        for j, i in enumerate(order):
            row = {"epoch": epoch + 1, "train_loss": train_loss[j], "train_acc": train_acc[j]}
            if evaluate:
                row.update(_evaluate(val_logits[j], test_logits[j], data, teacher))
            histories[i].rows.append(row)
        if progress:
            bar.update(1)
    bar.close()
    for j, i in enumerate(order):
        model = students[i]
        model.load_state_dict({k: to_module[k](v[j].detach()).clone() for k, v in weights.items()},
                              strict=False)
        model.eval()
        histories[i].model = model
    return histories


def stackable(make_student: Callable[[], nn.Module]) -> bool:
    """Whether students built by ``make_student`` can be trained by :func:`distill_sweep`
    (no batch norm, no dropout). Builds one model, so it draws from torch's global RNG."""
    model = make_student()
    return not any(isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.Dropout))
                   for mod in model.modules())
