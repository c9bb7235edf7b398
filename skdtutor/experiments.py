"""Experiment runner shared by the book's chapters and the CLI.

A chapter and ``python -m skdtutor compare`` call the same functions, so a table
in the book is regenerated exactly by the command printed next to it.

* :func:`get_teacher` trains a teacher once per setting and caches its weights
  (``$SKDTUTOR_CACHE`` or ``~/.cache/skdtutor``); its logits are kept in memory.
* :func:`run_students` distils one student per (loss, seed), stacked into one
  model when the architecture allows it (:func:`skdtutor.train.distill_sweep`),
  sequentially otherwise.
* :func:`compare` is the CLI's ``compare``: methods × temperatures × seeds.
* :func:`summarize` turns per-run rows into mean ± std per group.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import torch

from . import data as data_mod
from .losses import make_loss
from .models import build_model, count_parameters
from .train import (SweepMember, TeacherLogits, compute_teacher_logits, distill, distill_sweep,
                    stackable, train_teacher)

__all__ = ["Setting", "SETTINGS", "setting_for", "cache_dir", "get_teacher", "default_teacher",
           "teacher_snapshots", "run_students", "compare", "summarize", "format_table"]


@dataclass(frozen=True)
class Setting:
    """Default architectures and budgets for one dataset (CPU-friendly for the embedded ones)."""

    teacher: str = "cnn"
    teacher_width: int = 32
    teacher_epochs: int = 30
    student: str = "mlp"
    student_width: int = 32
    student_depth: int = 1
    student_epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3


SETTINGS = {
    "digits": Setting(teacher="cnn", teacher_width=32, teacher_epochs=30, student="mlp",
                      student_width=16, student_depth=1, student_epochs=40, batch_size=64),
    "mnist1d": Setting(teacher="cnn", teacher_width=32, teacher_epochs=40, student="mlp",
                       student_width=64, student_depth=1, student_epochs=60, batch_size=128,
                       lr=3e-3),
    "mnist": Setting(teacher="cnn", teacher_width=32, teacher_epochs=5, student="mlp",
                     student_width=64, student_depth=1, student_epochs=5, batch_size=256),
    "fashion-mnist": Setting(teacher="cnn", teacher_width=32, teacher_epochs=10, student="mlp",
                             student_width=64, student_depth=1, student_epochs=10, batch_size=256),
    "cifar10": Setting(teacher="resnet18", teacher_width=0, teacher_epochs=30, student="cnn",
                       student_width=16, student_epochs=30, batch_size=256),
    "cifar100": Setting(teacher="resnet34", teacher_width=0, teacher_epochs=60, student="resnet18",
                        student_width=0, student_epochs=60, batch_size=256),
}


def setting_for(dataset: str) -> Setting:
    """The default :class:`Setting` of a dataset."""
    key = dataset.lower()
    if key not in SETTINGS:
        raise ValueError(f"no default setting for dataset {dataset!r}; choose one of {sorted(SETTINGS)}")
    return SETTINGS[key]


def cache_dir(path=None) -> Path:
    """Folder for cached teachers: ``path``, else ``$SKDTUTOR_CACHE``, else ``~/.cache/skdtutor``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("SKDTUTOR_CACHE", Path.home() / ".cache" / "skdtutor"))


_LOGITS: dict[tuple, TeacherLogits] = {}


def get_teacher(data, arch: str = "cnn", width: int | None = None, epochs: int = 30, seed: int = 0,
                *, lr: float = 1e-3, batch_size: int = 128, device="auto", cache=None,
                use_cache: bool = True, progress: bool = False):
    """Train (or load from the cache) a teacher; return ``(model, TeacherLogits, history_df)``.

    The cache key holds every setting that changes the weights: dataset, its split
    seed, architecture, width, epochs, seed, learning rate and batch size.
    """
    width = width or None
    key = (data.name, data.seed, len(data.y_train), arch, width, epochs, seed, lr, batch_size)
    name = "teacher-" + "-".join(str(k) for k in key) + ".pt"
    path = cache_dir(cache) / name
    model = build_model(arch, data, width=width, seed=seed)
    if use_cache and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        history = pd.DataFrame(state["history"])
    else:
        hist = train_teacher(model, data, epochs, lr=lr, batch_size=batch_size, seed=seed,
                             device=device, progress=progress)
        history = hist.df
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                        "history": hist.rows}, path)
    model.eval()
    if (path, use_cache) not in _LOGITS or not use_cache:
        _LOGITS[(path, use_cache)] = compute_teacher_logits(model, data, device=device)
    return model, _LOGITS[(path, use_cache)], history


def default_teacher(data, seed: int = 0, device="auto", progress: bool = False):
    """:func:`get_teacher` with the dataset's default :class:`Setting` (what every chapter shares)."""
    s = setting_for(data.name)
    return get_teacher(data, s.teacher, s.teacher_width, s.teacher_epochs, seed=seed, lr=s.lr,
                       batch_size=s.batch_size, device=device, progress=progress)


def teacher_snapshots(data, arch: str | None = None, width: int | None = None,
                      epochs: int | None = None, seed: int = 0, *, lr: float | None = None,
                      batch_size: int | None = None, device="auto", cache=None,
                      use_cache: bool = True):
    """Train a teacher and keep its logits on every split after every epoch.

    Returns ``(snapshots, history_df)`` where ``snapshots[e]`` is the
    :class:`TeacherLogits` after epoch ``e`` (1-based; ``snapshots[0]`` is the
    untrained model). Defaults come from the dataset's :class:`Setting`. Cached
    on disk like :func:`get_teacher` (the logits, not the weights).
    """
    s = setting_for(data.name)
    arch, width = arch or s.teacher, s.teacher_width if width is None else width
    epochs, lr = epochs or s.teacher_epochs, lr or s.lr
    batch_size = batch_size or s.batch_size
    key = (data.name, data.seed, len(data.y_train), arch, width or None, epochs, seed, lr, batch_size)
    path = cache_dir(cache) / ("snapshots-" + "-".join(str(k) for k in key) + ".pt")
    if use_cache and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        return [TeacherLogits(*t) for t in state["snapshots"]], pd.DataFrame(state["history"])
    model = build_model(arch, data, width=width or None, seed=seed)
    snapshots = [compute_teacher_logits(model, data, device=device)]

    def keep(epoch, m):
        snapshots.append(compute_teacher_logits(m, data, device=device))

    hist = train_teacher(model, data, epochs, lr=lr, batch_size=batch_size, seed=seed,
                         device=device, progress=False, callback=keep)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"snapshots": [(t.train, t.val, t.test) for t in snapshots],
                    "history": hist.rows}, path)
    return snapshots, hist.df


def run_students(data, teacher, student: str, losses: Sequence, seeds: Iterable[int],
                 epochs: int, *, width: int | None = None, depth: int | None = None,
                 lr: float = 1e-3, batch_size: int = 128, device="auto", labelled=None,
                 batched: bool | None = None, progress: bool = False) -> pd.DataFrame:
    """Distil one student per (loss, seed); one row per run with its final metrics.

    Students are stacked into one model (:func:`distill_sweep`) when the
    architecture allows it and ``batched`` is not False; otherwise trained one
    after another with :func:`distill`. Both give the same numbers.
    """
    seeds = list(seeds)

    def make_student():
        return build_model(student, data, width=width, depth=depth)

    members = [SweepMember(loss, seed) for loss in losses for seed in seeds]
    use_batched = stackable(make_student) if batched is None else batched
    if use_batched:
        histories = distill_sweep(make_student, teacher, data, members, epochs, lr=lr,
                                  batch_size=batch_size, device=device, progress=progress,
                                  labelled=labelled, eval_every=epochs)
    else:
        if isinstance(teacher, torch.nn.Module):
            teacher = compute_teacher_logits(teacher, data, device=device)
        histories = []
        for m in members:
            torch.manual_seed(m.seed)
            model = make_student()
            histories.append(distill(model, teacher, data, m.loss, epochs, lr=lr,
                                     batch_size=batch_size, seed=m.seed, device=device,
                                     progress=progress, labelled=labelled, eval_every=epochs))
    n_params = count_parameters(histories[0].model)
    rows = []
    for h in histories:
        row = h.final
        row.update(student=student, student_params=n_params)
        rows.append(row)
    return pd.DataFrame(rows)


def compare(dataset: str = "mnist1d", teacher: str | None = None, student: str | None = None,
            methods: Sequence[str] = ("ce", "kd", "skd"), temperatures: Sequence[float] = (1, 4, 16),
            seeds: int | Sequence[int] = 3, gamma: float = 0.9, multiplier: float = 2.0,
            teacher_width: int | None = None, student_width: int | None = None,
            teacher_epochs: int | None = None, student_epochs: int | None = None,
            device="auto", root=None, cache=None, use_cache: bool = True,
            batched: bool | None = None, progress: bool = False) -> pd.DataFrame:
    """Train (or reuse) a teacher, then one student per (method, temperature, seed).

    ``ce`` ignores the teacher and the temperature, so it runs once per seed.
    ``seeds`` is a count (seeds ``0 .. seeds-1``) or an explicit list. Returns one
    row per run: method, T, gamma, multiplier, seed, test accuracy and the other
    final metrics, plus the teacher's and student's names and sizes.
    Defaults for architectures and epochs come from :data:`SETTINGS`.
    """
    setting = setting_for(dataset)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must be a positive count or a non-empty list")
    methods = [m.lower() for m in methods]
    losses = []
    for method in methods:
        if method == "ce":
            losses.append(make_loss("ce"))
        else:
            losses += [make_loss(method, T=T, gamma=gamma, multiplier=multiplier) for T in temperatures]
    data = data_mod.load(dataset, root=root)
    teacher = teacher or setting.teacher
    student = student or setting.student
    t_width = setting.teacher_width if teacher_width is None else teacher_width
    s_width = setting.student_width if student_width is None else student_width
    t_model, t_logits, _ = get_teacher(data, teacher, t_width,
                                       teacher_epochs or setting.teacher_epochs, seed=0,
                                       lr=setting.lr, batch_size=setting.batch_size, device=device,
                                       cache=cache, use_cache=use_cache, progress=progress)
    runs = run_students(data, t_logits, student, losses, seed_list,
                        student_epochs or setting.student_epochs, width=s_width,
                        depth=setting.student_depth if student == "mlp" else None,
                        lr=setting.lr, batch_size=setting.batch_size, device=device,
                        batched=batched, progress=progress)
    runs.insert(0, "dataset", data.name)
    runs["teacher"] = teacher
    runs["teacher_params"] = count_parameters(t_model)
    runs["teacher_test_acc"] = (t_logits.test.argmax(-1) == data.y_test).float().mean().item()
    if "T" in runs:
        runs.loc[runs["method"] == "ce", "T"] = float("nan")
    return runs


def summarize(runs: pd.DataFrame, by: Sequence[str] = ("method", "T"), value: str = "test_acc"):
    """Mean, std (sample std, ddof=1) and count of ``value`` per group; NaN keys kept."""
    by = [b for b in by if b in runs]
    grouped = runs.groupby(by, dropna=False, sort=False)[value]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return out


def format_table(summary: pd.DataFrame, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """``summarize`` output with a ``mean ± std`` string column (in percent by default)."""
    out = summary.copy()
    out["accuracy"] = [f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}" if pd.notna(s)
                       else f"{m * scale:.{digits}f}" for m, s in zip(out["mean"], out["std"])]
    if "T" in out:
        out["T"] = ["—" if pd.isna(t) else f"{t:g}" for t in out["T"]]
    return out

