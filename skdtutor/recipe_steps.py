"""The training loop of the literature's CIFAR recipes (:mod:`skdtutor.recipe`).

One model is trained with SGD (momentum, weight decay) and a step schedule: in epoch
:math:`e` (0-based) the learning rate is

.. math::
    \\eta_e = \\eta_0\\, \\delta^{\\,|\\{m \\in M:\\ e \\ge m\\}|}

for milestones :math:`M` and decay :math:`\\delta` (mdistiller's ``adjust_learning_rate``
with its 1-based epochs). Every batch is augmented on the device
(:func:`skdtutor.data.flip_crop`), so a teacher's logits cannot be computed once: the
teacher sees each augmented batch, in eval mode under :func:`torch.inference_mode`. On CUDA
the forward passes run under autocast (bf16 where the GPU supports it, else fp16 with a
gradient scaler) on channels-last tensors; on the CPU everything is plain float32. The loss
itself is always computed in float32.
"""
from __future__ import annotations

import contextlib
import math
import time

import torch
from torch import nn

from .data import flip_crop
from .losses import DistillLoss
from .steps import DivergedError

__all__ = ["AMP_MODES", "lr_at", "autocast_dtype", "memory_format", "train_step", "accuracy", "fit"]

AMP_MODES = ("auto", "bf16", "fp16", "off")  # mixed precision on CUDA; the CPU always runs float32


def lr_at(epoch: int, config) -> float:
    """The learning rate of 0-based ``epoch``: ``lr * lr_decay ** (milestones passed)``."""
    return config.lr * config.lr_decay ** sum(epoch >= m for m in config.milestones)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``; None (float32) on a CPU or with ``"off"``.
    ``"auto"`` is bf16 on a GPU that supports it (Ampere and later), else fp16."""
    if amp not in AMP_MODES:
        raise ValueError(f"unknown amp mode {amp!r}; choose one of {', '.join(AMP_MODES)}")
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def memory_format(channels_last: bool, device: torch.device) -> torch.memory_format:
    """``torch.channels_last`` on CUDA when asked, else the default layout."""
    return torch.channels_last if channels_last and device.type == "cuda" else torch.contiguous_format


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def train_step(model: nn.Module, optimizer, scaler, xb, yb, loss_fn: DistillLoss, *, teacher=None,
               generator=None, padding: int = 4, dtype=None, layout=torch.contiguous_format):
    """One SGD step on the augmented batch ``flip_crop(xb)``; returns the loss (a 0-d tensor,
    not synced). The teacher's logits come from the same augmented view."""
    device = xb.device
    xb = flip_crop(xb, generator, padding).contiguous(memory_format=layout)
    teacher_logits = None
    if teacher is not None:
        with torch.inference_mode(), _autocast(device, dtype):
            teacher_logits = teacher(xb)
        # a normal (not inference) float32 tensor, which autograd may save for the backward pass
        teacher_logits = teacher_logits.to(torch.float32, copy=True)
    with _autocast(device, dtype):
        logits = model(xb)
    loss = loss_fn(logits.float(), teacher_logits, yb)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


@torch.inference_mode()
def accuracy(model: nn.Module, x, y, *, batch_size: int, dtype=None,
             layout=torch.contiguous_format) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``(x, y)``, batched; ``x`` on the model's device."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for s in range(0, len(x), batch_size):
        with _autocast(x.device, dtype):
            logits = model(x[s:s + batch_size].contiguous(memory_format=layout))
        correct += (logits.argmax(1) == y[s:s + batch_size]).sum()
    model.train(was_training)
    return correct.item() / len(x)


def fit(model: nn.Module, train, test, loss_fn: DistillLoss, config, device: torch.device, *,
        teacher: nn.Module | None = None, log=None, desc: str = "") -> dict:
    """Train ``model`` on ``train = (x, y)`` with ``config`` (a
    :class:`~skdtutor.recipe.RecipeConfig`), evaluating on ``test = (x, y)`` every
    ``config.eval_every`` epochs and after the last one.

    Returns ``test_acc`` (after the last epoch), ``best_test_acc`` (the best evaluated epoch,
    what mdistiller reports), ``images_per_s`` (training images per second of training time,
    teacher forward and augmentation included, evaluation excluded), ``train_s`` and
    ``history`` (one dict per evaluated epoch). ``log(line)``, when given, gets one line per
    evaluated epoch. A non-finite loss raises :class:`~skdtutor.steps.DivergedError`.
    """
    dtype, layout = autocast_dtype(config.amp, device), memory_format(config.channels_last, device)
    model.to(device=device, memory_format=layout).train()
    if teacher is not None:
        teacher.to(device=device, memory_format=layout).eval().requires_grad_(False)
    x, y = train[0].to(device), train[1].to(device)
    x_test, y_test = test[0].to(device), test[1].to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    order = torch.Generator().manual_seed(config.seed)                   # batch order, on the CPU
    augment = torch.Generator(device=device).manual_seed(config.seed + 1)  # flips and crops, on the device
    n, history, train_s = len(y), [], 0.0
    for epoch in range(config.epochs):
        lr = lr_at(epoch, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        perm = torch.randperm(n, generator=order).to(device)
        total = torch.zeros((), device=device)
        for s in range(0, n, config.batch_size):
            idx = perm[s:s + config.batch_size]
            loss = train_step(model, optimizer, scaler, x[idx], y[idx], loss_fn, teacher=teacher,
                              generator=augment, padding=config.padding, dtype=dtype, layout=layout)
            total += loss * len(idx)
        train_loss = total.item() / n  # the epoch's one host sync
        train_s += time.perf_counter() - start
        if not math.isfinite(train_loss):
            record = {"desc": desc, "lr": lr}
            raise DivergedError(f"{desc or 'training'} diverged in epoch {epoch + 1}: the loss is "
                                f"{train_loss}; lower lr (now {lr:g}) or turn amp off", record,
                                {"epoch": epoch + 1, "train_loss": train_loss})
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            acc = accuracy(model, x_test, y_test, batch_size=config.eval_batch_size, dtype=dtype,
                           layout=layout)
            history.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "test_acc": acc})
            if log is not None:
                log(f"{desc} epoch {epoch + 1}/{config.epochs}: lr {lr:.4g}, train loss "
                    f"{train_loss:.4f}, test acc {100 * acc:.2f}%, {n * (epoch + 1) / train_s:,.0f} img/s")
    model.eval()
    return {"test_acc": history[-1]["test_acc"], "best_test_acc": max(h["test_acc"] for h in history),
            "images_per_s": n * config.epochs / train_s, "train_s": train_s, "history": history}
