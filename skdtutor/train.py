"""Trainers: a teacher on hard labels and a student by distillation.

Both share one design: the training split lives on the device as tensors and is
batched by index (no DataLoader); without augmentation the teacher's logits are
computed once and cached (no teacher forward per batch); nothing leaves the
device inside an epoch, and metrics are logged once per epoch.

* :func:`train_teacher` — cross-entropy training, with checkpoint and resume.
* :func:`distill` — one student, any :class:`~skdtutor.losses.DistillLoss`.
* many students at once: :func:`skdtutor.sweep.distill_sweep`, which uses the
  building blocks below (teacher resolution, epoch order, run record, evaluation).

How to train comes from a :class:`~skdtutor.config.TrainConfig` (``config=``) or
from keyword overrides of its fields (``lr=3e-3, batch_size=64``), validated by it.

Where the time goes in a step of a small model on a CPU is mostly fixed
per-operation overhead, not arithmetic, so the trainers keep the number of
operations per step at the minimum: the epoch's batches are gathered once per
epoch (one indexing per tensor, then free slices), the loss object's formula is
called directly, Adam is the fused single-kernel implementation where PyTorch
has one, and the training loss and accuracy are reduced once per epoch.
``benchmarks/bench_train.py`` measures all this.

Reproducibility: the batch order comes from a ``torch.Generator`` seeded with
``seed``; build the model under ``torch.manual_seed(seed)`` (or
:func:`skdtutor.models.build_model` with ``seed=``) to fix its initial weights.

More than one process: under ``torchrun`` (inside :func:`skdtutor.distributed.session`)
every trainer here runs data-parallel with ``DistributedDataParallel``: each rank
trains on its shard of every batch, with its loss scaled so that DDP's gradient
average is the gradient of the global batch's mean (an uneven last batch and an empty
shard included; see :mod:`skdtutor.distributed`), and every rank evaluates the same
weights on the whole validation and test splits. The numbers are those of one
process up to float rounding.

Threads: on a small CPU, tiny models train fastest with one intra-op thread.
The trainers never change the thread setting themselves; ``threads=`` runs one
call under a temporary setting (restored on return).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import cache, distributed
from .config import TrainConfig, train_config
from .losses import CE, DistillLoss
from .steps import (DivergedError, History, TeacherLogits, adam, batch_bounds, check_data,
                    check_mask, compute_teacher_logits, diverged_message, due_for_eval,
                    epoch_metrics, epoch_order, evaluate, finite_members, gather_whole_epoch,
                    num_threads, predict, progress_bar, resolve_device, resolve_teacher, run_record)

__all__ = ["History", "TeacherLogits", "resolve_device", "predict", "compute_teacher_logits",
           "train_teacher", "distill", "num_threads", "DivergedError"]


def _loss_caller(loss_fn: DistillLoss):
    """The loss as ``f(logits, teacher, labels, mask) -> scalar`` with the hyperparameters bound
    once (the per-call ``hparams()`` dict is skipped when the class keeps the default ``__call__``)."""
    if type(loss_fn).__call__ is not DistillLoss.__call__:
        return loss_fn
    per_sample, hp = type(loss_fn).per_sample, loss_fn.hparams()

    def call(logits, teacher, labels, mask):
        return per_sample(logits, teacher, labels, mask, **hp).mean()

    return call


_CHECKPOINT_KEYS = {"model", "optimizer", "generator", "rows", "epoch", "config", "fingerprint"}


def _fingerprint(data, teacher: TeacherLogits | None) -> dict:
    """What a checkpoint must have been trained on: the data (name, split seed, sizes and a
    digest of the training split's content) and the teacher (a digest of its logits)."""
    h = hashlib.sha1()
    for t in (data.x_train, data.y_train):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return {"data": [str(data.name), getattr(data, "seed", None), len(data.y_train), len(data.y_val),
                     len(data.y_test), h.hexdigest()[:16]],
            "teacher": None if teacher is None else cache.tensor_digest(teacher.train, teacher.val,
                                                                         teacher.test)}


def _save_checkpoint(path, **state):
    cache.save(path, state)  # atomic and checksummed: never a half-written checkpoint


def _resume(checkpoint, history, fingerprint, model, optimizer, generator) -> int:
    """Load a checkpoint written with the same settings, data and teacher; return its epoch."""
    fix = "delete it or pass resume=False to start over"
    try:
        state = cache.read(checkpoint, what="checkpoint")
    except cache.DamagedEntry as exc:
        raise ValueError(f"{exc}; {fix}") from None
    name = str(checkpoint)
    if not isinstance(state, dict) or not _CHECKPOINT_KEYS <= set(state):
        missing = sorted(_CHECKPOINT_KEYS - set(state)) if isinstance(state, dict) else "all"
        raise ValueError(f"checkpoint {name!r} is not a skdtutor checkpoint (missing {missing}); {fix}")
    if state["config"] != history.config:
        raise ValueError(f"checkpoint {name!r} was written with other settings "
                         f"({state['config']}); {fix}, or pass the same settings")
    for part, what in (("data", "data (name, split seed, sizes or content)"), ("teacher", "teacher")):
        if state["fingerprint"].get(part) != fingerprint[part]:
            raise ValueError(f"checkpoint {name!r} was written against another {what}: "
                             f"{state['fingerprint'].get(part)} != {fingerprint[part]}; {fix}")
    try:
        epoch = int(state["epoch"])
        if not 1 <= epoch <= history.config["epochs"] or len(state["rows"]) != epoch:
            raise ValueError(f"epoch {epoch} with {len(state['rows'])} rows")
        if not all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()):
            raise ValueError("non-finite weights")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
    except Exception as exc:  # noqa: BLE001 - any mismatch: the checkpoint does not fit this run
        raise ValueError(f"checkpoint {name!r} does not fit this model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); {fix}") from None
    history.rows = list(state["rows"])
    return epoch


def _parallel_epoch_metrics(losses, preds, ye, shards, n: int):
    """Mean training loss and accuracy over all ranks' shards (one all-reduce per epoch)."""
    local_sizes = torch.tensor([hi - lo for lo, hi in shards], dtype=torch.float64, device=ye.device)
    mine = torch.cat([ye[lo:hi] for lo, hi in shards])
    totals = torch.stack([(torch.stack(losses).double() * local_sizes).sum(),
                          (torch.cat(preds) == mine).sum().double()])
    return (distributed.all_reduce_sum(totals) / n).tolist()


def _fit(model, data, loss_fn: DistillLoss, cfg: TrainConfig, *, teacher=None, teacher_model=None,
         augment=None, labelled=None, progress=False, checkpoint=None, resume=False,
         stop_after=None, callback=None, desc="train") -> History:
    check_data(data)
    device = resolve_device(cfg.device)
    n = len(data.y_train)
    mask = check_mask(labelled, n)
    model.to(device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    t_train = None if teacher is None or teacher_model is not None else teacher.train.to(device)
    mask = None if mask is None else mask.to(device)
    optimizer = adam(model.parameters(), cfg.lr, cfg.weight_decay, device)
    generator = torch.Generator().manual_seed(cfg.seed)
    history = History(config=run_record(loss_fn, cfg), model=model)
    start = 0
    fingerprint = None if checkpoint is None else _fingerprint(data, teacher)
    if checkpoint is not None and resume and distributed.broadcast_object(Path(checkpoint).exists()):
        start = _resume(checkpoint, history, fingerprint, model, optimizer, generator)
    parallel = distributed.world_size() > 1  # under torchrun: DDP, one shard of each batch per rank
    net = distributed.wrap(model, device) if parallel else model  # trains; `model` evaluates
    compute_loss = _loss_caller(loss_fn)
    bounds, sizes = batch_bounds(n, cfg.batch_size, device)
    shards = [distributed.shard_bounds(s, e) for s, e in bounds] if parallel else bounds
    gather = gather_whole_epoch(x.element_size() * x.numel())
    bar = progress_bar(cfg.epochs - start, desc, progress if distributed.is_rank0() else False)
    for epoch in range(start + 1, cfg.epochs + 1):
        net.train()
        perm = torch.randperm(n, generator=generator).to(device, non_blocking=True)
        ye, te, me = epoch_order(perm, y, t_train, mask)
        xe = x.index_select(0, perm) if gather else None
        losses, preds = [], []
        for (s, e), (lo, hi) in zip(bounds, shards):
            if augment is not None:  # the whole batch: the generator advances as in one process
                xb = augment(xe[s:e] if gather else x[perm[s:e]], generator)[lo - s:hi - s]
            else:
                xb = xe[lo:hi] if gather else x[perm[lo:hi]]
            logits = net(xb)
            if teacher_model is not None:  # augmentation: the teacher must see the same view
                with torch.no_grad():
                    tb = teacher_model(xb)
            else:
                tb = None if te is None else te[lo:hi]
            mb = None if me is None else me[lo:hi]
            if parallel:
                loss, local_mean = distributed.shard_loss(
                    lambda: compute_loss(logits, tb, ye[lo:hi], mb), logits, hi - lo, e - s)
            else:
                loss = local_mean = compute_loss(logits, tb, ye[s:e], mb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(local_mean.detach())
            preds.append(logits.argmax(-1))
        train_loss, train_acc = (_parallel_epoch_metrics(losses, preds, ye, shards, n) if parallel
                                 else epoch_metrics(losses, preds, ye, sizes, n))
        if not finite_members([train_loss], [p.unsqueeze(0) for p in model.parameters()])[0]:
            bar.close()
            row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
            raise DivergedError(diverged_message(history.config, epoch, train_loss), history.config, row)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
        if due_for_eval(epoch, cfg):
            row.update(evaluate(predict(model, data.x_val, device=device),
                                predict(model, data.x_test, device=device), data, teacher))
        history.rows.append(row)
        if callback is not None:
            callback(epoch, model)
        if progress:
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{row.get('test_acc', float('nan')):.3f}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model=model.state_dict(), optimizer=optimizer.state_dict(),
                             generator=generator.get_state(), rows=history.rows, epoch=epoch,
                             config=history.config, fingerprint=fingerprint)
        if stop_after is not None and epoch - start >= stop_after:
            break
    bar.close()
    model.eval()
    return history


def _config(config, epochs, overrides) -> TrainConfig:
    return train_config(config, **overrides, **({} if epochs is None else {"epochs": epochs}))


# ---------------------------------------------------------------------------- public
def train_teacher(model: nn.Module, data, epochs: int | None = None, *,
                  config: TrainConfig | None = None, progress="auto",
                  augment: Callable | None = None, checkpoint=None, resume: bool = False,
                  stop_after: int | None = None, callback: Callable | None = None,
                  **overrides) -> History:
    """Train ``model`` in place with cross-entropy on the training split.

    Parameters
    ----------
    model : any ``nn.Module`` mapping ``data.x_train`` batches to logits.
    data : a :class:`~skdtutor.data.DataBundle`.
    epochs : passes over the training split (default: the config's).
    config : a :class:`~skdtutor.config.TrainConfig` (default ``TrainConfig()``).
    **overrides : fields of the config changed for this call: ``lr``,
        ``weight_decay``, ``batch_size``, ``seed`` (the batch order; build the
        model under the same seed for full reproducibility), ``device``
        (``"auto"``, ``"cpu"``, ``"cuda"``), ``eval_every`` (evaluation is the only
        per-epoch cost that grows with the test set; sweeps that only need the
        final numbers pass ``eval_every=epochs``) and ``threads`` (run under
        ``torch.set_num_threads(threads)``, restored afterwards; see :func:`num_threads`).
    progress : True, False or ``"auto"`` (a bar where a person watches; see :mod:`skdtutor.progress`).
    augment : optional ``f(x_batch, generator) -> x_batch`` (e.g. :func:`skdtutor.data.flip_crop`).
    checkpoint : path of a checkpoint written after every epoch (model, optimizer,
        RNG state, history). With ``resume=True`` an existing checkpoint is
        loaded first and training continues from its epoch; the final weights
        equal those of an uninterrupted run. Resuming with other settings raises ValueError.
    stop_after : stop after this many epochs in this call (resume later).
    callback : optional ``f(epoch, model)`` called after every epoch (e.g. to keep snapshots).

    Returns
    -------
    History; ``history.df`` has one row per epoch.
    """
    cfg = _config(config, epochs, overrides)
    with num_threads(cfg.threads):
        return _fit(model, data, CE(), cfg, augment=augment, progress=progress, checkpoint=checkpoint,
                    resume=resume, stop_after=stop_after, callback=callback, desc="teacher")


def distill(student: nn.Module, teacher, data, loss: DistillLoss, epochs: int | None = None, *,
            config: TrainConfig | None = None, progress="auto", labelled=None,
            augment: Callable | None = None, checkpoint=None, resume: bool = False,
            stop_after: int | None = None, **overrides) -> History:
    """Train ``student`` in place against a frozen teacher with ``loss``.

    Parameters
    ----------
    student : the model to train.
    teacher : an ``nn.Module`` (kept in eval mode, never updated) or precomputed
        :class:`TeacherLogits`. Without augmentation its logits are computed once
        per call (pass :class:`TeacherLogits` to share them between calls).
    loss : a :class:`~skdtutor.losses.DistillLoss`, e.g. ``KD(T=4, gamma=0.9)``,
        ``SKD(...)``, ``DiceKD(...)``, ``CE()`` (or :func:`skdtutor.losses.make_loss`).
    labelled : optional boolean mask over the training split; samples where it is
        False are treated as unlabelled (only the distillation term applies to them).
    Other parameters as in :func:`train_teacher`.
    """
    if not isinstance(loss, DistillLoss):
        raise ValueError(f"loss must be a loss object such as skdtutor.losses.KD(T=4.0), got {loss!r}")
    cfg = _config(config, epochs, overrides)
    with num_threads(cfg.threads):
        teacher, teacher_model = resolve_teacher(teacher, data, cfg.device,
                                                 loss.name if loss.needs_teacher else None,
                                                 keep_model=augment is not None)
        return _fit(student, data, loss, cfg, teacher=teacher, teacher_model=teacher_model,
                    augment=augment, labelled=labelled, progress=progress, checkpoint=checkpoint,
                    resume=resume, stop_after=stop_after, desc=f"distill {loss.name}")
