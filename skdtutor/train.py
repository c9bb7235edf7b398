"""Trainers: a teacher on hard labels, a student by distillation, and whole sweeps at once.

All three share one design: the training split lives on the device as tensors
and is batched by index (no DataLoader); without augmentation the teacher's
logits are computed once and cached (no teacher forward per batch); nothing
leaves the device inside an epoch, and metrics are logged once per epoch.

* :func:`train_teacher` — cross-entropy training, with checkpoint and resume.
* :func:`distill` — one student, any loss object of :mod:`skdtutor.losses`.
* :func:`distill_sweep` — N students of one architecture (different seeds,
  temperatures, gammas, multipliers, methods) stacked into one model with
  ``torch.func.stack_module_state`` and ``vmap``: one optimizer step updates all
  N. Each member follows exactly the arithmetic of its own :func:`distill` run
  with the same seed (same initial weights, same batch order), so the results
  match the sequential runs up to float rounding.

Reproducibility: the batch order comes from a ``torch.Generator`` seeded with
``seed``; build the model under ``torch.manual_seed(seed)`` (or
:func:`skdtutor.models.build_model` with ``seed=``) to fix its initial weights.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from . import metrics
from .losses import CE, _Loss

__all__ = ["History", "TeacherLogits", "DistillConfig", "resolve_device", "predict",
           "compute_teacher_logits", "train_teacher", "distill", "distill_sweep", "SweepMember"]


# --------------------------------------------------------------------------- records
@dataclass
class History:
    """What a run produced: one row per evaluated epoch, the settings, and the trained model."""

    rows: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def df(self) -> pd.DataFrame:
        """One row per epoch: train loss and accuracy, validation accuracy, and test accuracy,
        NLL, ECE, mean max probability, mean logit norm, entropy (and agreement with the teacher)."""
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


@dataclass
class DistillConfig:
    """Settings of one training run (shared by the trainers, the sweeps and the CLI)."""

    epochs: int = 30          # passes over the training split
    batch_size: int = 128     # samples per optimizer step
    lr: float = 1e-3          # Adam learning rate (constant)
    weight_decay: float = 0.0  # Adam L2 penalty
    seed: int = 0             # batch order (and model init, where this package builds the model)
    device: str = "auto"      # "auto" = CUDA when available, else CPU
    eval_every: int = 1       # evaluate every k epochs (the last epoch is always evaluated)
    progress: bool = False    # one tqdm bar per run

    def kwargs(self) -> dict:
        return dict(self.__dict__)


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA GPU is available; use device='cpu' or 'auto'")
    return device


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
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
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
    bar = _progress(epochs - start, desc, progress)
    for epoch in range(start, epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            idx = idx.to(device, non_blocking=True)
            xb = x[idx] if augment is None else augment(x[idx], generator)
            logits = model(xb)
            if teacher_model is not None:  # augmentation: the teacher must see the same view
                with torch.no_grad():
                    tb = teacher_model(xb)
            else:
                tb = None if t_train is None else t_train[idx]
            loss = loss_fn(logits, tb, y[idx], None if mask is None else mask[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(-1) == y[idx]).sum()
        row = {"epoch": epoch + 1, "train_loss": (loss_sum / n).item(), "train_acc": (correct / n).item()}
        if (epoch + 1) % max(eval_every, 1) == 0 or epoch + 1 == epochs:
            row.update(_evaluate(predict(model, data.x_val, device=device),
                                 predict(model, data.x_test, device=device), data, teacher))
        history.rows.append(row)
        if callback is not None:
            callback(epoch + 1, model)
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
                  eval_every: int = 1, callback: Callable | None = None) -> History:
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
        equal those of an uninterrupted run.
    stop_after : stop after this many epochs in this call (resume later).
    eval_every : evaluate every k epochs (the last one always).
    callback : optional ``f(epoch, model)`` called after every epoch (e.g. to keep snapshots).

    Returns
    -------
    History; ``history.df`` has one row per epoch.
    """
    return _fit(model, data, CE(), epochs, augment=augment, lr=lr, weight_decay=weight_decay,
                batch_size=batch_size, seed=seed, device=device, progress=progress,
                checkpoint=checkpoint, resume=resume, stop_after=stop_after,
                eval_every=eval_every, callback=callback, desc="teacher")


def distill(student: nn.Module, teacher, data, loss: _Loss, epochs: int = 30, *,
            lr: float = 1e-3, weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0,
            device="auto", progress: bool = True, labelled=None, augment: Callable | None = None,
            checkpoint=None, resume: bool = False, stop_after: int | None = None,
            eval_every: int = 1) -> History:
    """Train ``student`` in place against a frozen teacher with ``loss``.

    Parameters
    ----------
    student : the model to train.
    teacher : an ``nn.Module`` (kept in eval mode, never updated) or precomputed
        :class:`TeacherLogits`. Without augmentation its logits are computed once.
    loss : a loss object, e.g. ``KD(T=4, gamma=0.9)``, ``SKD(...)``, ``DiceKD(...)``,
        ``CE()`` (or :func:`skdtutor.losses.make_loss`).
    labelled : optional boolean mask over the training split; samples where it is
        False are treated as unlabelled (only the distillation term applies to them).
    Other parameters as in :func:`train_teacher`.
    """
    if not isinstance(loss, _Loss):
        raise ValueError(f"loss must be a loss object such as skdtutor.losses.KD(T=4.0), got {loss!r}")
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


@dataclass(frozen=True)
class SweepMember:
    """One student of a sweep: its loss and its seed (initial weights and batch order)."""

    loss: _Loss
    seed: int = 0


def _group_members(members: Sequence[SweepMember], device):
    """Group members whose losses can be computed together; stack their numeric hyperparameters."""
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault(m.loss.static_key(), []).append(i)
    out = []
    for indices in groups.values():
        first = members[indices[0]].loss
        hp = {}
        for name, value in first.hparams().items():
            if name in first.stackable:
                hp[name] = torch.tensor([members[i].loss.hparams()[name] for i in indices],
                                        dtype=torch.float32, device=device).view(-1, 1, 1)
            else:
                hp[name] = value
        out.append((torch.tensor(indices, device=device), type(first).per_sample, hp))
    return out


def distill_sweep(make_student: Callable[[], nn.Module], teacher, data,
                  members: Sequence[SweepMember], epochs: int = 30, *, lr: float = 1e-3,
                  weight_decay: float = 0.0, batch_size: int = 128, device="auto",
                  progress: bool = True, labelled=None, eval_every: int = 1) -> list[History]:
    """Train many students of one architecture as one stacked model; one History per member.

    ``make_student()`` must build the architecture; member ``i`` is initialised by
    calling it under ``torch.manual_seed(members[i].seed)`` and shuffles with a
    generator seeded the same way, exactly like
    ``torch.manual_seed(seed); distill(make_student(), teacher, data, loss, seed=seed)``.
    The members' parameters are stacked along a new leading dimension
    (``torch.func.stack_module_state``), the forward pass is ``vmap``-ed over it,
    and one Adam step (element-wise, so members never interact) updates them all.
    Losses of different kinds are grouped; within a group the temperature,
    gamma and multiplier are tensors with one entry per member.

    The architecture must be free of batch norm and dropout (true of
    :class:`~skdtutor.models.MLP` and :class:`~skdtutor.models.CNN`); use
    sequential :func:`distill` calls otherwise.
    """
    from torch.func import functional_call, stack_module_state

    members = list(members)
    if not members:
        raise ValueError("members is empty; pass at least one SweepMember(loss, seed)")
    for m in members:
        if not isinstance(m, SweepMember) or not isinstance(m.loss, _Loss):
            raise ValueError(f"members must be SweepMember(loss, seed) items, got {m!r}")
    _check_common(data, epochs, batch_size, lr)
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
    if teacher is None and any(m.loss.needs_teacher for m in members):
        raise ValueError("these losses need a teacher")
    params, buffers = stack_module_state(students)
    base = copy.deepcopy(students[0]).to("meta")

    def forward_one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    forward = torch.vmap(forward_one)
    forward_shared = torch.vmap(forward_one, in_dims=(0, 0, None))
    optimizer = torch.optim.Adam(list(params.values()), lr=lr, weight_decay=weight_decay)
    generators = [torch.Generator().manual_seed(m.seed) for m in members]
    groups = _group_members(members, device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    t_train = None if teacher is None else teacher.train.to(device)
    mask = None if labelled is None else labelled.to(device)
    n_members = len(members)
    histories = []
    for m in members:
        hist = History(config={"method": m.loss.name, **m.loss.hparams(), "seed": m.seed,
                               "epochs": epochs, "batch_size": batch_size, "lr": lr,
                               "weight_decay": weight_decay})
        histories.append(hist)

    @torch.no_grad()
    def stacked_predict(xs):
        return torch.cat([forward_shared(params, buffers, xs[i:i + 2048].to(device)).float()
                          for i in range(0, len(xs), 2048)], dim=1).cpu()

    bar = _progress(epochs, f"sweep x{n_members}", progress)
    for epoch in range(epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        loss_sum = torch.zeros(n_members, device=device)
        correct = torch.zeros(n_members, device=device)
        for start in range(0, n, batch_size):
            idx = perms[:, start:start + batch_size]  # (members, batch)
            logits = forward(params, buffers, x[idx])  # (members, batch, classes)
            yb = y[idx]
            tb = None if t_train is None else t_train[idx]
            mb = None if mask is None else mask[idx]
            per_member = torch.zeros(n_members, device=device)
            for indices, per_sample, hp in groups:
                losses = per_sample(logits[indices], None if tb is None else tb[indices],
                                    yb[indices], None if mb is None else mb[indices], **hp)
                per_member = per_member.index_add(0, indices, losses.mean(-1))
            optimizer.zero_grad(set_to_none=True)
            per_member.sum().backward()  # members are independent: each gets its own gradient
            optimizer.step()
            loss_sum += per_member.detach() * idx.shape[1]
            correct += (logits.detach().argmax(-1) == yb).sum(-1)
        train_loss = (loss_sum / n).tolist()
        train_acc = (correct / n).tolist()
        evaluate = (epoch + 1) % max(eval_every, 1) == 0 or epoch + 1 == epochs
        if evaluate:
            val_logits, test_logits = stacked_predict(data.x_val), stacked_predict(data.x_test)
        for i, hist in enumerate(histories):
            row = {"epoch": epoch + 1, "train_loss": train_loss[i], "train_acc": train_acc[i]}
            if evaluate:
                row.update(_evaluate(val_logits[i], test_logits[i], data, teacher))
            hist.rows.append(row)
        bar.update(1)
    bar.close()
    for i, hist in enumerate(histories):
        model = students[i]
        model.load_state_dict({k: v[i].detach().clone() for k, v in params.items()}, strict=False)
        model.eval()
        hist.model = model
    return histories


def stackable(make_student: Callable[[], nn.Module]) -> bool:
    """Whether students built by ``make_student`` can be trained by :func:`distill_sweep`."""
    model = make_student()
    return not any(isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.Dropout))
                   for mod in model.modules())

