"""The regime map: where does a teacher help a student, and where does it stop?

:func:`regime_map` trains, for one dataset, CE, KD at every temperature of a grid
and SKD at every temperature (the same grid), over several seeds, along two axes:

* **student size**: MLP students of several ``(width, depth)`` pairs, each trained on
  the full training split;
* **training data**: the dataset's default student on a stratified ``fraction`` of
  the training split (labels and teacher targets on those samples only; the teacher
  itself is the dataset's default one, trained on the full split).

Every axis point is one stacked, cached :func:`skdtutor.runs.run_students` call
with the dataset's default teacher (:func:`skdtutor.teachers.default_teacher`) and
student training settings. :func:`summarize_regime` turns the rows into one line
per axis point: CE, and the best KD and the best SKD where **the temperature is
chosen on validation accuracy** (mean over seeds), scored on the test split and
compared with CE by the book's one noise rule (:func:`skdtutor.stats.compare_to_noise`)::

    rmap = regime_map("mnist1d", sizes=[(64, 1), (128, 2)], temperatures=(1, 4, 16),
                      seeds=[0, 1, 2], fractions=(0.25, 0.5))
    rmap.summary[["axis", "params", "fraction", "kd_gain", "kd_verdict"]]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from . import data as data_mod
from .config import ModelSpec, setting_for
from .losses import CE, KD, SKD
from .progress import one_bar
from .runs import plan, run_students
from .stats import compare_to_noise, noise_phrase, seed_values, signed
from .steps import TeacherLogits
from .teachers import default_teacher

__all__ = ["RegimeMap", "regime_map", "fraction_subset", "best_temperature", "summarize_regime",
           "regime_table", "gain_phrase", "points_where", "summary_row", "where_text", "ROW_COLUMNS", "VERDICT_MARKS"]

ROW_COLUMNS = ["dataset", "axis", "params", "width", "depth", "fraction", "method", "T", "seed",
               "val_acc", "test_acc"]


@dataclass
class RegimeMap:
    """What :func:`regime_map` measured."""

    rows: pd.DataFrame     # one row per student: ROW_COLUMNS
    summary: pd.DataFrame  # one row per axis point (see summarize_regime)
    teacher_acc: float     # the default teacher's test accuracy (fraction, 0..1)
    settings: dict         # every setting of the map


def fraction_subset(data, teacher: TeacherLogits, fraction: float, seed: int = 0):
    """``(bundle, teacher_logits, indices)``: a stratified ``fraction`` of every class of the
    training split (:func:`skdtutor.data.stratified_split`, deterministic in ``seed``), with
    the teacher's training logits restricted to the same samples; val and test unchanged.
    ``fraction == 1`` returns the inputs (and every index)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    if fraction == 1.0:
        return data, teacher, np.arange(len(data.y_train))
    _, kept = data_mod.stratified_split(data.y_train, fraction, seed)
    if len(kept) == 0:
        raise ValueError(f"fraction {fraction} keeps none of the {len(data.y_train)} training samples")
    return (data.subset(kept), TeacherLogits(teacher.train[kept], teacher.val, teacher.test), kept)


def _losses(temperatures, gamma, multiplier):
    ts = [float(t) for t in temperatures]
    return ([CE()] + [KD(T=t, gamma=gamma) for t in ts]
            + [SKD(T=t, gamma=gamma, multiplier=multiplier) for t in ts])


def _point(data, teacher, spec, cfg, losses, seeds, *, cache, use_cache):
    result = run_students(data, {"teacher": teacher}, spec, plan(losses[:1], seeds)
                          + plan(losses[1:], seeds, "teacher"), cfg, cache=cache, use_cache=use_cache)
    rows = result.rows
    if "T" not in rows:
        rows["T"] = np.nan
    rows.loc[rows["method"] == "ce", "T"] = np.nan
    return rows


@one_bar("regime_map")
def regime_map(dataset, sizes: Sequence[tuple[int, int]], temperatures: Sequence[float] = (1, 4, 16),
               seeds: Sequence[int] = (0, 1, 2), *, fractions: Sequence[float] | None = None,
               gamma: float = 0.9, multiplier: float = 2.0, fraction_seed: int = 0,
               epochs: int | None = None, teacher: TeacherLogits | None = None,
               device: str = "auto", cache=None, use_cache: bool = True,
               progress="auto") -> RegimeMap:
    """CE, KD and SKD along a student-size axis and (optionally) a training-data axis.

    Parameters
    ----------
    dataset : a dataset name (loaded with :func:`skdtutor.data.load`) or a DataBundle.
    sizes : MLP ``(width, depth)`` pairs of the size axis (full training split).
    temperatures : the T grid of both KD and SKD (SKD at ``multiplier``), ``gamma`` their
        weight on the soft term.
    seeds : student seeds (at least two, for the noise rule; three or more in the book).
    fractions : fractions of the training split for the data axis, at the dataset's
        default student (``fraction == 1`` is added; it reuses the size axis's run when
        the default student is among ``sizes``). None: no data axis.
    fraction_seed : the seed of the stratified subsets.
    epochs : student epochs (default: the dataset's setting), the same at every fraction
        (so a smaller fraction means fewer optimizer steps, for every method alike).
    teacher : the teacher's logits on the full bundle (default: the dataset's default
        teacher, :func:`skdtutor.teachers.default_teacher`, trained or read from the cache).
    progress : one bar for the whole map: True, False or ``"auto"`` (see :mod:`skdtutor.progress`).

    Returns
    -------
    :class:`RegimeMap`; ``rows`` holds :data:`ROW_COLUMNS` (accuracies as fractions,
    ``T`` NaN for CE), ``summary`` what :func:`summarize_regime` makes of them.
    """
    bundle = data_mod.load(dataset) if isinstance(dataset, str) else dataset
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise ValueError("the regime map's verdicts need at least two seeds")
    s = setting_for(bundle.name)
    cfg = s.student_train.replace(device=device, **({} if epochs is None else {"epochs": epochs}))
    if teacher is None:
        _, teacher, _ = default_teacher(bundle, cache=cache, use_cache=use_cache, device=device)
    losses = _losses(temperatures, gamma, multiplier)
    default = (int(s.student.width), int(s.student.depth))
    points = [("size", (int(w), int(d)), 1.0) for w, d in sizes]
    if fractions is not None:
        points += [("fraction", default, float(f)) for f in sorted(set(fractions) | {1.0})]
    done, parts = {}, []
    for axis, (w, d), f in points:
        if ((w, d), f) not in done:
            sub, sub_teacher, _ = fraction_subset(bundle, teacher, f, fraction_seed)
            done[(w, d), f] = _point(sub, sub_teacher, ModelSpec("mlp", w, d), cfg, losses, seeds,
                                     cache=cache, use_cache=use_cache)
        rows = done[(w, d), f]
        parts.append(pd.DataFrame({"dataset": bundle.name, "axis": axis,
                                   "params": rows["student_params"].astype(int), "width": w,
                                   "depth": d, "fraction": f, "method": rows["method"], "T": rows["T"],
                                   "seed": rows["seed"].astype(int), "val_acc": rows["val_acc"],
                                   "test_acc": rows["test_acc"]}))
    rows = pd.concat(parts, ignore_index=True)[ROW_COLUMNS]
    teacher_acc = float((teacher.test.argmax(-1) == bundle.y_test).float().mean())
    settings = dict(dataset=bundle.name, sizes=[tuple(p) for p in sizes], temperatures=list(temperatures),
                    seeds=seeds, fractions=None if fractions is None else sorted(set(fractions) | {1.0}),
                    gamma=gamma, multiplier=multiplier, fraction_seed=fraction_seed, epochs=cfg.epochs,
                    lr=cfg.lr, batch_size=cfg.batch_size, default_student=default,
                    n_train=len(bundle.y_train))
    return RegimeMap(rows, summarize_regime(rows), teacher_acc, settings)


def best_temperature(rows: pd.DataFrame, method: str, value: str = "val_acc") -> float:
    """The ``T`` of ``method`` whose mean ``value`` over seeds is the largest (ties: the
    smallest T). Pass the rows of one axis point."""
    part = rows[rows["method"] == method]
    if part.empty:
        raise ValueError(f"no rows of method {method!r}")
    means = part.groupby("T")[value].mean().sort_index()
    return float(means.idxmax())


def summarize_regime(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, axis, width, depth, fraction): ``params``, ``ce_mean``/``ce_std``,
    and for ``m`` in kd, skd: ``m_T`` (chosen on validation, :func:`best_temperature`),
    ``m_mean``/``m_std`` (test, at that T), ``m_gain`` (m_mean - ce_mean), ``m_noise`` and
    ``m_verdict`` (:func:`skdtutor.stats.compare_to_noise` of m's per-seed test accuracies
    against CE's). Accuracies stay fractions (0..1)."""
    keys = ["dataset", "axis", "width", "depth", "fraction"]
    out = []
    for key, part in rows.groupby(keys, sort=False):
        ce = seed_values(part, method="ce")
        rec = dict(zip(keys, key), params=int(part["params"].iloc[0]), ce_mean=float(ce.mean()),
                   ce_std=float(ce.std(ddof=1)))
        for m in ("kd", "skd"):
            if not (part["method"] == m).any():
                continue
            t = best_temperature(part, m)
            vals = seed_values(part, method=m, T=t)
            cmp = compare_to_noise(vals, ce)
            rec.update({f"{m}_T": t, f"{m}_mean": float(vals.mean()), f"{m}_std": float(vals.std(ddof=1)),
                        f"{m}_gain": cmp["diff"], f"{m}_noise": cmp["noise"], f"{m}_verdict": cmp["verdict"]})
        out.append(rec)
    return pd.DataFrame(out)


VERDICT_MARKS = {"better": "▲", "worse": "▼", "within noise": "≈"}  # the table's verdict marks


def _params_text(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def regime_table(summary: pd.DataFrame, axis: str = "size", scale: float = 100.0,
                 digits: int = 1) -> pd.DataFrame:
    """The summary's rows of ``axis`` as short text columns that fit the book's column:
    ``data``, ``student`` (``"128×2 (23k)"``) or ``fraction``, ``CE`` (mean ± std) and
    per method ``"+3.6 (T 4) ▲"``: the gain over CE in points, the T chosen on validation
    and the noise rule's verdict (:data:`VERDICT_MARKS`)."""
    part = summary[summary["axis"] == axis]
    out = pd.DataFrame({"data": part["dataset"].to_numpy()})
    if axis == "size":
        out["student"] = [f"{w}×{d} ({_params_text(p)})" for w, d, p in
                          zip(part["width"], part["depth"], part["params"])]
    else:
        out["fraction"] = [f"{f:.0%}" for f in part["fraction"]]
    out["CE (%)"] = [f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"
                     for m, s in zip(part["ce_mean"], part["ce_std"])]
    for m in ("kd", "skd"):
        if f"{m}_gain" in part:
            out[f"{m.upper()} − CE"] = [f"{signed(g * scale, digits)} (T {t:g}) {VERDICT_MARKS[v]}" for g, t, v in
                                        zip(part[f"{m}_gain"], part[f"{m}_T"], part[f"{m}_verdict"])]
    return out


def gain_phrase(row, method: str, digits: int = 1) -> str:
    """:func:`skdtutor.stats.noise_phrase` for one summary row's ``method`` against CE,
    e.g. ``"better by 3.6 points (noise 1.2)"``."""
    return noise_phrase({"diff": row[f"{method}_gain"], "noise": row[f"{method}_noise"],
                         "verdict": row[f"{method}_verdict"]}, digits=digits)


def points_where(summary: pd.DataFrame, method: str, verdict: str = "better", axis: str = "size") -> list[str]:
    """The axis points (``"128×2"`` students or ``"10%"`` fractions) of ``summary`` where
    ``method``'s verdict against CE is ``verdict``, in the summary's order."""
    part = summary[(summary["axis"] == axis) & (summary[f"{method}_verdict"] == verdict)]
    if axis == "size":
        return [f"{w}×{d}" for w, d in zip(part["width"], part["depth"])]
    return [f"{f:.0%}" for f in part["fraction"]]


def summary_row(summary: pd.DataFrame, dataset: str, size: tuple[int, int] | None = None,
                fraction: float | None = None) -> pd.Series:
    """The summary's row of ``dataset`` at a student ``size`` ``(width, depth)`` of the size
    axis, or at a ``fraction`` of the data axis."""
    s = summary[summary["dataset"] == dataset]
    if (size is None) == (fraction is None):
        raise ValueError("pass exactly one of size=(width, depth) and fraction=")
    if size is not None:
        s = s[(s["axis"] == "size") & (s["width"] == size[0]) & (s["depth"] == size[1])]
    else:
        s = s[(s["axis"] == "fraction") & (s["fraction"] == fraction)]
    if s.empty:
        raise ValueError(f"no summary row for {dataset!r} at size={size}, fraction={fraction}")
    return s.iloc[0]


def where_text(summary: pd.DataFrame, dataset: str, method: str, axis: str = "size",
               verdict: str = "better") -> str:
    """``"at 128×2, 256×2"`` (the :func:`points_where` of ``dataset``) or ``"at none of them"``."""
    pts = points_where(summary[summary["dataset"] == dataset], method, verdict, axis)
    return ("at " + ", ".join(pts)) if pts else "at none of them"
