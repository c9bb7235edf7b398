"""Stacked sweeps on every CPU core: a plan's members split over worker processes.

A stacked sweep (:func:`skdtutor.sweep.distill_sweep`) runs in one thread: more threads
per process make its many small operations slower, not faster. On a CPU with spare cores
:func:`stacked_sweep` therefore splits the members into groups, trains the first group in
this process and the others in worker processes (one thread each), and returns the
histories in the members' order. Every member does the arithmetic of its own sequential
run whichever group it lands in, so the numbers are those of one stack, to float rounding
(the tests check it).

How many processes: ``workers="auto"`` (the default) uses the CPU cores this process may
run on (its affinity and, in a container, its cgroup CPU quota) divided by torch's thread
count, at most :data:`MAX_AUTO_WORKERS`, and never groups of fewer than :data:`MIN_GROUP`
members; on a GPU, or under torchrun, one. ``SKDTUTOR_WORKERS=N`` sets it (1 turns it off).
The workers are started once (``spawn``, so they are safe in a notebook kernel) and kept
for later sweeps; data and results travel between processes as ``torch.save`` bytes (no
shared memory, which containers often limit).
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import io
import math
import multiprocessing
import os

import torch

__all__ = ["available_cores", "sweep_workers", "stacked_sweep", "MAX_AUTO_WORKERS", "MIN_GROUP"]

MAX_AUTO_WORKERS = 2  # "auto" never starts more: each process holds its own torch (~300 MB)
MIN_GROUP = 4         # members per process below which a split costs more than it gains

_pool: cf.ProcessPoolExecutor | None = None
_pool_size = 0


def available_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota
    (``cpu.max`` of cgroup v2, or ``cfs_quota_us / cfs_period_us`` of v1) where one is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for path, parse in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), _v1_period()])):
        try:
            quota, period = parse(open(path).read())
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1") and period:
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
        break
    return max(1, cores)


def _v1_period() -> str:
    try:
        return open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read().strip()
    except OSError:
        return ""


def sweep_workers(n_members: int, device: torch.device, workers="auto", threads: int | None = None) -> int:
    """How many processes a stacked sweep of ``n_members`` students uses (see the module);
    ``threads``: torch threads per process (default: torch's current setting)."""
    env = os.environ.get("SKDTUTOR_WORKERS", "").strip()
    if env:
        workers = env
    if workers == "auto":
        if device.type != "cpu" or int(os.environ.get("WORLD_SIZE", "1")) > 1:  # GPU, torchrun
            return 1
        workers = min(MAX_AUTO_WORKERS, available_cores() // max(1, threads or torch.get_num_threads()))
    try:
        workers = int(workers)
    except (TypeError, ValueError):
        raise ValueError(f"workers must be 'auto' or a positive integer (SKDTUTOR_WORKERS too), "
                         f"got {workers!r}") from None
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return max(1, min(workers, n_members // MIN_GROUP))


def _to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _from_bytes(blob: bytes):
    return torch.load(io.BytesIO(blob), weights_only=False)


def _init_worker() -> None:
    torch.set_num_threads(1)
    os.environ["SKDTUTOR_NO_PROGRESS"] = "1"  # a worker has no one to show a bar to


def _train_group(blob: bytes) -> bytes:
    """Worker side: one group's :func:`~skdtutor.sweep.distill_sweep`, as bytes."""
    from .sweep import distill_sweep

    spec, teachers, data, members, cfg, labelled = _from_bytes(blob)
    histories = distill_sweep(lambda: spec.build(data), teachers, data, members, config=cfg,
                              progress=False, labelled=labelled)
    return _to_bytes(histories)


def _get_pool(size: int) -> cf.ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < size:
        shutdown()
        _pool = cf.ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker)
        _pool_size = size
    return _pool


def shutdown() -> None:
    """Stop the worker processes (they are started again when a sweep needs them)."""
    global _pool, _pool_size
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
    _pool, _pool_size = None, 0


atexit.register(shutdown)


def _groups(n: int, k: int) -> list[range]:
    """``k`` contiguous index ranges covering ``range(n)``, sizes differing by at most one."""
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def stacked_sweep(spec, teachers, data, members, cfg, *, progress="auto", labelled=None,
                  workers="auto"):
    """:func:`~skdtutor.sweep.distill_sweep` of ``spec``'s students (``spec.build(data)``),
    its members split over :func:`sweep_workers` processes; the histories in members' order."""
    from .steps import resolve_device
    from .sweep import distill_sweep

    members = list(members)
    k = sweep_workers(len(members), resolve_device(cfg.device), workers, cfg.threads)
    if k == 1:
        return distill_sweep(lambda: spec.build(data), teachers, data, members, config=cfg,
                             progress=progress, labelled=labelled)
    groups = _groups(len(members), k)
    pool = _get_pool(k - 1)
    futures = [pool.submit(_train_group, _to_bytes((spec, teachers, data, [members[i] for i in g],
                                                     cfg, labelled))) for g in groups[1:]]
    try:
        first = distill_sweep(lambda: spec.build(data), teachers, data, [members[i] for i in groups[0]],
                              config=cfg, progress=progress, labelled=labelled)
        rest = [_from_bytes(f.result()) for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return [h for part in (first, *rest) for h in part]
