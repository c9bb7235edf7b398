"""Stacked sweeps on every CPU core: a plan's members split over worker processes.

A stacked sweep (:func:`skdtutor.sweep.distill_sweep`) runs in one thread: more threads
per process make its many small operations slower, not faster. On a CPU with spare cores
:func:`stacked_sweep` therefore splits the members into groups, trains the first group in
this process and the others in worker processes (one torch thread each, unless the run's
``TrainConfig.threads`` says otherwise), and returns the histories in the members' order. Every member does the same arithmetic
whichever group it lands in, so the numbers are those of one stack, to float rounding
(the tests check it). Warnings a worker raises (a diverged member) are raised again here, and
torch's global random state is left as it was found, whether or not the sweep was split.

How many processes: ``workers="auto"`` (the default) uses the CPU cores this process may
run on (its affinity and, in a container, its cgroup CPU quota) divided by torch's thread
count, at most :data:`MAX_AUTO_WORKERS`, never groups of fewer than :data:`MIN_GROUP`
members, and one for a sweep of fewer than :data:`MIN_SPLIT_STEPS` member-steps (too short to
pay for the split); on a GPU, or under torchrun, one. ``SKDTUTOR_WORKERS=N`` sets it (1 turns it off).
The workers are plain subprocesses, started once and kept for later sweeps (safe in a
notebook kernel and in a script without a ``__main__`` guard); data and results travel
through their pipes as ``torch.save`` bytes (no shared memory, which containers often limit).
"""
from __future__ import annotations

import atexit
import io
import math
import os
import struct
import subprocess
import sys
import traceback
import warnings

import torch

__all__ = ["available_cores", "sweep_workers", "stacked_sweep", "MAX_AUTO_WORKERS", "MIN_GROUP",
           "MIN_SPLIT_STEPS"]

MAX_AUTO_WORKERS = 2  # "auto" never starts more: each process holds its own torch (~300 MB)
MIN_GROUP = 4         # members per process below which a split costs more than it gains
MIN_SPLIT_STEPS = 4000  # member-steps (members x epochs x batches) below which "auto" keeps one
                        # process: starting a group's work and shipping its results back costs
                        # ~0.1 s (a 15-student, 5-epoch digits sweep of 0.1 s ran 0.86x as fast split)



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


def sweep_workers(n_members: int, device: torch.device, workers="auto", threads: int | None = None,
                  steps: int | None = None) -> int:
    """How many processes a stacked sweep of ``n_members`` students uses (see the module);
    ``threads``: torch threads per process (default: torch's current setting); ``steps``: the
    sweep's member-steps, for the :data:`MIN_SPLIT_STEPS` rule of ``"auto"``."""
    env = os.environ.get("SKDTUTOR_WORKERS", "").strip()
    if env:
        workers = env
    if device.type != "cpu" or int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a GPU, torchrun
        return 1
    if workers == "auto":
        if steps is not None and steps < MIN_SPLIT_STEPS:
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


class _Worker:
    """One worker process, ``python -c ... _serve()``: jobs in on its stdin, results out on
    its stdout, each as a length-prefixed ``torch.save`` blob. A plain subprocess rather than
    :mod:`multiprocessing`, whose ``spawn`` re-imports the caller's ``__main__`` (a script
    without an ``if __name__ == "__main__"`` guard would start its own sweep again)."""

    def __init__(self):
        boot = f"import sys; sys.path[:0] = {sys.path!r}; from skdtutor.parallel import _serve; _serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", boot], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, "SKDTUTOR_NO_PROGRESS": "1"},
                                     start_new_session=True)  # a terminal's Ctrl-C is the parent's to handle

    def send(self, blob: bytes) -> None:
        self.proc.stdin.write(struct.pack("<Q", len(blob)) + blob)
        self.proc.stdin.flush()

    def receive(self):
        head = self.proc.stdout.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        blob = b"" if size is None else self.proc.stdout.read(size)
        if size is None or len(blob) < size:
            raise RuntimeError(f"a sweep worker process stopped (exit status {self.proc.poll()}); "
                               "run with SKDTUTOR_WORKERS=1 to train in this process only")
        status, payload = _from_bytes(blob)
        if status == "error":
            raise RuntimeError(f"a sweep worker process failed:\n{payload}")
        histories, caught = payload
        for category, message in caught:  # the worker's warnings (a diverged member), raised here
            warnings.warn(message, category, stacklevel=3)
        return histories

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, kill: bool = False) -> None:
        """End the worker: close its input (its loop returns) or, with ``kill``, stop it now."""
        if not self.alive():
            return
        if kill:
            self.proc.kill()
        else:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc.wait()


def _serve() -> None:
    """The worker's loop: train each job's group (:func:`_train_group`) until stdin closes."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print() goes to stderr, never into the results
    torch.set_num_threads(1)
    source = sys.stdin.buffer
    while len(head := source.read(8)) == 8:
        blob = source.read(struct.unpack("<Q", head)[0])
        try:
            reply = ("ok", _train_group(*_from_bytes(blob)))
        except BaseException:  # the parent raises it with this traceback
            reply = ("error", traceback.format_exc())
        data = _to_bytes(reply)
        out.write(struct.pack("<Q", len(data)) + data)
        out.flush()


def _train_group(spec, teachers, data, members, cfg, labelled):
    """Worker side: one group's :func:`~skdtutor.sweep.distill_sweep`, and the warnings it
    raised as ``(category, message)`` pairs (the parent raises them again)."""
    from .sweep import distill_sweep

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        histories = distill_sweep(lambda: spec.build(data), teachers, data, members, config=cfg,
                                  progress=False, labelled=labelled)
    return histories, [(w.category, str(w.message)) for w in caught]


_workers: list[_Worker] = []


def _get_workers(n: int) -> list[_Worker]:
    _workers[:] = [w for w in _workers if w.alive()]
    while len(_workers) < n:
        _workers.append(_Worker())
    return _workers[:n]


def shutdown(kill: bool = False) -> None:
    """Stop the worker processes (they are started again when a sweep needs them); ``kill``
    stops busy ones at once (an interrupted sweep)."""
    while _workers:
        _workers.pop().close(kill)


atexit.register(shutdown)


def _groups(n: int, k: int) -> list[range]:
    """``k`` contiguous index ranges covering ``range(n)``, sizes differing by at most one."""
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def stacked_sweep(spec, teachers, data, members, cfg, *, progress="auto", labelled=None,
                  workers="auto"):
    """:func:`~skdtutor.sweep.distill_sweep` of ``spec``'s students (``spec.build(data)``),
    its members split over :func:`sweep_workers` processes; the histories in members' order.
    Leaves torch's global (CPU) random state as it found it."""
    from .steps import resolve_device
    from .sweep import distill_sweep

    members = list(members)
    steps = len(members) * cfg.epochs * math.ceil(len(data.y_train) / cfg.batch_size)
    k = sweep_workers(len(members), resolve_device(cfg.device), workers, cfg.threads, steps)
    # torch's global random state is left as it was found, so that a split sweep and a single
    # stack (2 cores or 1) leave later unseeded draws alike
    with torch.random.fork_rng(devices=[]):
        if k == 1:
            return distill_sweep(lambda: spec.build(data), teachers, data, members, config=cfg,
                                 progress=progress, labelled=labelled)
        groups = _groups(len(members), k)
        try:
            workers = _get_workers(k - 1)
            for worker, g in zip(workers, groups[1:]):  # the workers start on their groups ...
                worker.send(_to_bytes((spec, teachers, data, [members[i] for i in g], cfg, labelled)))
            first = distill_sweep(  # ... while this process trains the first one
                lambda: spec.build(data), teachers, data, [members[i] for i in groups[0]],
                config=cfg, progress=progress, labelled=labelled)
            rest = [w.receive() for w in workers]
        except BaseException:
            shutdown(kill=True)  # a worker may be busy with, or half-way through, a job nobody reads
            raise
    return [h for part in (first, *rest) for h in part]
