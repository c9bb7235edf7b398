"""More than one process: data-parallel training under ``torchrun`` (``torch.distributed``).

``torchrun --nproc-per-node N -m skdtutor compare ...`` starts N copies of the command
and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each. :func:`session` turns
those into a process group (NCCL on GPUs, gloo on CPUs; on a GPU each process uses
``cuda:LOCAL_RANK``), and the trainer (:mod:`skdtutor.train`) then wraps the model in
``DistributedDataParallel``. Without those variables nothing here does anything and
every helper answers as for one process (rank 0 of 1).

The split of one step over ``W`` ranks
--------------------------------------
Every rank draws the same epoch order from the same seeded generator, and rank ``r``
takes its contiguous part of each global batch of ``B`` samples (:func:`shard_bounds`:
the first ``B mod W`` ranks get one sample more; a rank may get none when ``B < W``).
DDP averages the ranks' gradients, so each rank's loss is scaled by
:func:`loss_scale` so that the average is the gradient of the global batch's mean::

    loss_r = mean_r * n_r * W / B = (sum of rank r's per-sample losses) / B * W
    (1/W) * sum_r grad loss_r = grad (1/B) * sum over the batch = grad of the global mean

An uneven last batch (``B`` not a multiple of ``W``) and an empty shard (``n_r = 0``:
its loss is ``0 * sum(logits)``, which still runs the backward that DDP waits for)
are covered by the same formula. The weights are therefore the same on every rank,
and the same as one process's up to float rounding.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import warnings
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["launched", "active", "rank", "world_size", "is_rank0", "backend_for", "session",
           "barrier", "all_reduce_sum", "broadcast_object", "in_turn", "shard_bounds", "shard_of",
           "loss_scale", "shard_loss", "wrap"]

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets in every process


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its variables are set)."""
    return all(k in os.environ for k in ENV_VARS)


def active() -> bool:
    """Whether a process group is up (inside :func:`session` under ``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the process group (0 without one)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes training together (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_rank0() -> bool:
    """Whether this process prints and writes files: rank 0 of the group (before it
    starts: torchrun's ``RANK`` 0), or the only process."""
    return rank() == 0 if active() else int(os.environ.get("RANK", 0)) == 0


def backend_for(device: torch.device) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` for CPUs."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _local_device(device) -> torch.device:
    """The validated device of this process: ``cuda:LOCAL_RANK`` on GPUs (or the GPU named,
    for a single process), else the CPU."""
    from .steps import resolve_device

    device = resolve_device(device)
    if device.type != "cuda":
        return device
    local = int(os.environ["LOCAL_RANK"])
    if device.index is not None:  # one process may use the GPU it names
        if int(os.environ["WORLD_SIZE"]) > 1:
            raise ValueError(f"device {str(device)!r} names one GPU, but under torchrun each process "
                             "uses cuda:LOCAL_RANK; pass --device cuda (or auto)")
        return device
    if local >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK {local} has no GPU (this node has {torch.cuda.device_count()}); "
                         "pass --nproc-per-node at most the number of GPUs, or --device cpu")
    return torch.device("cuda", local)


def _start(device: torch.device) -> None:
    """Start this process's group (once; it lasts until the process exits)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), device_id=device if device.type == "cuda" else None)
    atexit.register(dist.destroy_process_group)


@contextlib.contextmanager
def session(device="auto", say=None):
    """A process group for the block when started by ``torchrun``; otherwise nothing.

    ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``) chooses the backend: NCCL when it
    resolves to a GPU (this process then uses ``cuda:LOCAL_RANK`` as its current
    device, so ``"cuda"`` means that GPU everywhere), gloo otherwise. The group starts
    at the first session and lasts until the process exits (a later session reuses it: a
    second group started in one torchrun process, after the first was destroyed, hung). Ranks other than 0 are silent
    (no warnings, no progress bars). ``say(line)``, e.g. ``print``, is called on rank 0
    with one line naming the processes and the backend. At the end of the block every
    rank waits for the others.
    """
    if not launched():
        yield
        return
    device = _local_device(device)
    if not active():
        _start(device)
    elif dist.get_backend() != backend_for(device):
        raise ValueError(f"this process's group uses {dist.get_backend()}, not {backend_for(device)} "
                         f"for device {str(device)!r}; use one device type per torchrun process")
    with warnings.catch_warnings(), _silent(not is_rank0()):
        if say is not None and is_rank0():
            say(f"torchrun: {world_size()} processes ({dist.get_backend()}); students train one at "
                "a time with DistributedDataParallel (the stacked sweep runs in one process only)")
        yield
    barrier()


@contextlib.contextmanager
def _silent(quiet: bool):
    """No warnings and no progress bars in the block (``SKDTUTOR_NO_PROGRESS``) when ``quiet``."""
    saved = os.environ.get("SKDTUTOR_NO_PROGRESS")
    if quiet:
        warnings.simplefilter("ignore")
        os.environ["SKDTUTOR_NO_PROGRESS"] = "1"
    try:
        yield
    finally:
        if quiet and saved is None:
            os.environ.pop("SKDTUTOR_NO_PROGRESS")
        elif quiet:
            os.environ["SKDTUTOR_NO_PROGRESS"] = saved


def barrier() -> None:
    """Wait until every rank gets here (nothing without a process group)."""
    if active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks, in place (returned unchanged for one process)."""
    if active() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (picklable; ``obj`` itself for one process)."""
    if not active() or world_size() == 1:
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def in_turn(fn: Callable):
    """``fn()`` on every rank, but never at once on one disk: first on rank 0, then on the
    other nodes' first processes (``LOCAL_RANK`` 0), then on the rest; e.g. a dataset
    download, which then happens once per disk. A failure on any rank raises on every
    rank (a ``FileNotFoundError`` naming the rank, or that rank's own exception)."""
    if not active() or world_size() == 1:
        return fn()
    local = int(os.environ.get("LOCAL_RANK", 0))
    result = None
    for turn in (rank() == 0, rank() != 0 and local == 0, local != 0):
        error = None
        if turn:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - every rank must hear of it
                error = exc
        failures = [None] * world_size()
        dist.all_gather_object(failures, None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failed = [(r, f) for r, f in enumerate(failures) if f is not None]
        if failed:
            raise FileNotFoundError(f"rank {failed[0][0]} failed: {failed[0][1]}")
    return result


def shard_bounds(start: int, stop: int, rank_: int | None = None, world: int | None = None):
    """This rank's contiguous part ``(lo, hi)`` of the batch ``[start, stop)``.

    With ``B = stop - start`` samples over ``W`` ranks, rank ``r`` gets
    ``B // W + (r < B % W)`` of them, in rank order (``torch.tensor_split``'s rule), so
    the shards tile the batch and the first rank's is never empty when ``B > 0``.
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    q, extra = divmod(stop - start, w)
    lo = start + r * q + min(r, extra)
    return lo, lo + q + (r < extra)


def shard_of(batch_index: torch.Tensor) -> torch.Tensor:
    """This rank's part of one batch's sample index (all of it for one process)."""
    lo, hi = shard_bounds(0, len(batch_index))
    return batch_index[lo:hi]


def loss_scale(n_local: int, n_global: int) -> float:
    """The factor ``n_local * W / n_global`` that turns a rank's mean loss into its part of
    the global mean under DDP's gradient average (see the module docstring)."""
    if n_global < 1:
        raise ValueError(f"a batch must hold at least one sample, got {n_global}")
    return n_local * world_size() / n_global


def shard_loss(mean_loss: Callable[[], torch.Tensor], logits: torch.Tensor, n_local: int,
               n_global: int):
    """``(loss to backpropagate, this shard's mean loss)`` for one rank's shard of a batch.

    ``mean_loss()`` is the loss averaged over the shard's ``n_local`` samples (of the
    batch's ``n_global``; every loss of :mod:`skdtutor.losses` is such a per-sample mean);
    the loss to backpropagate is it times :func:`loss_scale`.
    An empty shard calls nothing: it backpropagates ``0 * sum(logits)`` (no gradient,
    but the backward pass DDP waits for on every rank) and its mean is 0.
    """
    if n_local == 0:
        zero = logits.sum() * 0.0
        return zero, zero
    loss = mean_loss()
    return loss * loss_scale(n_local, n_global), loss


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (its weights broadcast from rank 0).

    On GPUs, batch-norm layers become ``SyncBatchNorm`` first (the statistics of the
    global batch, as in one process); gloo has no synchronised batch norm, so on CPUs
    a model with batch norm normalises each rank's shard by its own statistics.
    """
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        index = torch.cuda.current_device() if device.index is None else device.index  # "cuda"
        return DistributedDataParallel(model, device_ids=[index])
    return DistributedDataParallel(model)
