"""The steps shared by the single trainer (:mod:`skdtutor.train`) and the stacked
one (:mod:`skdtutor.stacking`), written once: what a run records, the teacher's
logits, the epoch's batch order, evaluation, Adam and the epoch's metrics.

:mod:`skdtutor.train` re-exports the records a user meets (:class:`History`,
:class:`TeacherLogits`, :func:`predict`, :func:`compute_teacher_logits`,
:func:`resolve_device`, :func:`num_threads`).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from . import metrics
from .config import TrainConfig, check_device
from .losses import DistillLoss
from .progress import progress_bar  # re-exported: the trainers' bars (tqdm imported only when shown)

__all__ = ["History", "TeacherLogits", "resolve_device", "num_threads", "predict",
           "compute_teacher_logits", "check_data", "check_mask", "resolve_teacher", "run_record",
           "evaluate", "evaluate_members", "due_for_eval", "gather_whole_epoch", "epoch_order", "batch_bounds",
           "epoch_metrics", "fused_adam_ok", "adam", "progress_bar", "GATHER_BYTES",
           "DivergedError", "finite_members", "diverged_message", "nan_metrics"]

# Gather the whole epoch's batches at once (x[perm]) when the copy is at most this
# many bytes; above it, every step indexes its own batch (same numbers, less memory).
GATHER_BYTES = 256 * 2 ** 20


# --------------------------------------------------------------------------- records
@dataclass
class History:
    """What a run produced: one row per epoch, the settings, and the trained model."""

    rows: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False)
    diverged_epoch: int | None = None  # a stacked member whose loss or weights became non-finite

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
    check_device(device)
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


class DivergedError(RuntimeError):
    """Training produced a non-finite loss or weight: the run has no result.

    ``record`` is the run's settings (:func:`run_record`), ``row`` the epoch's
    training row (``epoch``, ``train_loss``, ``train_acc``) where it diverged."""

    def __init__(self, message: str, record: dict | None = None, row: dict | None = None):
        super().__init__(message)
        self.record, self.row = record or {}, row or {}


def nan_metrics(data, teacher) -> dict:
    """The metrics of :func:`evaluate`, all NaN (a diverged run has none)."""
    zeros = [torch.zeros(len(getattr(data, f"y_{s}")), int(data.num_classes)) for s in ("val", "test")]
    return {k: float("nan") for k in evaluate(*zeros, data, teacher)}


def finite_members(losses, weights) -> list[bool]:
    """Per member: is its epoch loss finite and are all its weights finite?

    ``losses`` is the epoch's mean training loss per member (floats, already on
    the host); ``weights`` are tensors whose first axis is the member (one
    member: pass ``[p.unsqueeze(0) for p in params]``). One host sync per epoch.
    """
    ok = torch.stack([torch.isfinite(w.detach()).reshape(w.shape[0], -1).all(1) for w in weights]).all(0)
    return [bool(f) and math.isfinite(loss) for f, loss in zip(ok.tolist(), losses)]


def diverged_message(record: dict, epoch: int, loss: float) -> str:
    """What diverged and what to try: method, hyperparameters, seed, epoch and a hint."""
    hp = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                   if k not in ("method", "seed", "epochs", "batch_size", "lr", "weight_decay"))
    what = "loss" if not math.isfinite(loss) else "weights"
    return (f"training diverged: {record['method']}{f' ({hp})' if hp else ''}, seed {record['seed']}, "
            f"epoch {epoch}: non-finite {what} (epoch loss {loss}); lower the learning rate "
            f"(lr={record['lr']:g}), the temperature or the multiplier, or check the inputs for NaN")


# ------------------------------------------------------------------- building blocks
def check_data(data) -> None:
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        if not hasattr(data, attr):
            raise ValueError(f"data must be a DataBundle from skdtutor.data.load (missing {attr!r})")


def check_mask(labelled, n):
    """``labelled`` as a boolean tensor of shape ``(n,)`` (or None); anything else is a ValueError."""
    if labelled is None:
        return None
    labelled = torch.as_tensor(labelled)
    if labelled.dtype != torch.bool or labelled.shape != (n,):
        raise ValueError(f"labelled must be a boolean mask of shape ({n},) over the training split, "
                         f"got dtype {labelled.dtype} and shape {tuple(labelled.shape)}")
    return labelled


def resolve_teacher(teacher, data, device, needs_teacher: str | None = None, keep_model=False):
    """``(TeacherLogits or None, teacher module or None)`` from a module, logits or None.

    A module is put in eval mode and frozen; its logits are computed once. It is
    returned too (on ``device``) only with ``keep_model`` (augmentation: the
    teacher must see each augmented batch). ``needs_teacher`` names a loss that
    needs one, for the error when there is none.
    """
    model = None
    if isinstance(teacher, nn.Module):
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        if keep_model:
            model = teacher.to(resolve_device(device))
        teacher = compute_teacher_logits(teacher, data, device=device)
    elif not isinstance(teacher, TeacherLogits) and teacher is not None:
        raise ValueError("teacher must be an nn.Module or TeacherLogits from compute_teacher_logits")
    if teacher is None and needs_teacher is not None:
        raise ValueError(f"the {needs_teacher!r} loss needs a teacher")
    return teacher, model


def run_record(loss: DistillLoss, config: TrainConfig, seed: int | None = None) -> dict:
    """The settings a History records (and a checkpoint must match)."""
    return {"method": loss.name, **loss.hparams(), "seed": config.seed if seed is None else seed,
            "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
            "weight_decay": config.weight_decay}


def evaluate(logits_val, logits_test, data, teacher: TeacherLogits | None) -> dict:
    """Validation accuracy and the test metrics of :func:`skdtutor.metrics.summarize`."""
    return evaluate_members(logits_val.unsqueeze(0), logits_test.unsqueeze(0), data, [teacher])[0]


def evaluate_members(logits_val, logits_test, data, teachers) -> list[dict]:
    """:func:`evaluate` for every member of a stack: logits ``(members, n, classes)``,
    ``teachers`` one TeacherLogits (or None) per member."""
    members = logits_test.shape[0]
    if len(data.y_val):
        val_acc = (logits_val.max(-1).indices == data.y_val).float().mean(-1).tolist()
    else:
        val_acc = [float("nan")] * members
    own = None if teachers[0] is None else [t.test for t in teachers]
    test = metrics.summarize_members(logits_test, data.y_test, own)
    return [{"val_acc": v, **t} for v, t in zip(val_acc, test)]


def due_for_eval(epoch: int, config: TrainConfig) -> bool:
    """Whether (1-based) ``epoch`` is evaluated: every ``eval_every`` epochs and the last one."""
    return epoch % config.eval_every == 0 or epoch == config.epochs


def gather_whole_epoch(nbytes: int) -> bool:
    """Whether an epoch's inputs (``nbytes``) are gathered at once (see :data:`GATHER_BYTES`)."""
    return nbytes <= GATHER_BYTES


def epoch_order(perm, y, teacher_train, mask):
    """The epoch's labels, teacher logits and mask in batch order: one gather each, then slices.

    ``perm`` is ``(n,)`` or, for stacked members, ``(members, n)`` (the stacked sweep gathers
    its teachers' terms itself, :mod:`skdtutor.sweep_loss`, and passes no teacher).
    """
    flat = perm.reshape(-1)
    ye = y.index_select(0, flat).view(perm.shape)
    te = None if teacher_train is None else teacher_train.index_select(0, flat).view(*perm.shape, -1)
    me = None if mask is None else mask.index_select(0, flat).view(perm.shape)
    return ye, te, me


def batch_bounds(n: int, batch_size: int, device):
    """The ``(start, stop)`` of every batch and the batch sizes as a float tensor."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    sizes = torch.tensor([b - a for a, b in bounds], dtype=torch.float32, device=device)
    return bounds, sizes


def epoch_metrics(losses, preds, ye, sizes, n: int):
    """Mean training loss and accuracy over an epoch (last axis: batches), one host sync."""
    loss = (torch.stack(losses, -1).float() * sizes).sum(-1) / n
    acc = (torch.cat(preds, -1) == ye).sum(-1) / n
    return loss.tolist(), acc.tolist()


def fused_adam_ok(params, device) -> bool:
    """Whether the fused Adam kernel applies: CPU or CUDA, floating-point parameters."""
    return device.type in ("cpu", "cuda") and all(
        p.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16) for p in params)


def adam(params, lr, weight_decay, device) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where PyTorch supports it (CPU and CUDA).

    The fused kernel does the same element-wise arithmetic as the default
    implementation in one call instead of a dozen per parameter; the trainers
    and the sweep use the same variant, so their results stay comparable.
    """
    params = list(params)
    if fused_adam_ok(params, device):
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):  # pragma: no cover - builds without fused CPU Adam
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
