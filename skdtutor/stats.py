"""Seed statistics: summaries, tables, and the book's one noise rule.

**The noise rule.** Two methods are compared on their per-seed values ``a`` and
``b`` (e.g. test accuracies): ``diff = mean(a) - mean(b)`` against the pooled
sample standard deviation ``noise = sqrt((var(a) + var(b)) / 2)`` (``ddof=1``).
``a`` is *better* when ``diff > noise``, *worse* when ``diff < -noise``, and
*within noise* otherwise (:func:`compare_to_noise`). :func:`claim_verdict` and
:func:`noise_phrase` apply the same rule.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["seed_summary", "mean_pm_std", "format_table", "select", "seed_values",
           "compare_to_noise", "noise_phrase", "claim_verdict", "overall_verdict"]


def seed_summary(runs: pd.DataFrame, by: Sequence[str] = ("method", "T"), value: str = "test_acc"):
    """Mean, std (sample std, ddof=1) and count of ``value`` per group; NaN keys kept."""
    by = [b for b in by if b in runs]
    grouped = runs.groupby(by, dropna=False, sort=False)[value]
    return grouped.agg(mean="mean", std="std", n="count").reset_index()


def mean_pm_std(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """``"m ± s"`` (scaled, e.g. to percent); just ``"m"`` when ``std`` is NaN (one seed)."""
    if pd.isna(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def format_table(summary: pd.DataFrame, value: str = "test_acc", scale: float = 100.0,
                 digits: int = 2) -> pd.DataFrame:
    """:func:`seed_summary` output plus a ``mean ± std`` string column named ``value``
    (in percent by default); a ``T`` column is shown as text (``—`` where NaN)."""
    out = summary.copy()
    out[value] = [mean_pm_std(m, s, scale, digits) for m, s in zip(out["mean"], out["std"])]
    if "T" in out:
        out["T"] = ["—" if pd.isna(t) else f"{t:g}" for t in out["T"]]
    return out


def select(runs: pd.DataFrame, **conditions) -> pd.DataFrame:
    """Rows whose columns equal the given values (``None`` matches NaN/None; a list matches any item).

    ``select(runs, method="kd", teacher=32)``.
    """
    mask = pd.Series(True, index=runs.index)
    for col, value in conditions.items():
        column = runs[col]
        if isinstance(value, (list, tuple)):
            mask &= column.isin(value)
        elif value is None:
            mask &= column.isna()
        else:
            mask &= column == value
    return runs[mask]


def seed_values(runs: pd.DataFrame, value: str = "test_acc", **conditions) -> np.ndarray:
    """The per-seed ``value`` of the rows :func:`select` picks, ordered by seed."""
    rows = select(runs, **conditions).sort_values("seed", kind="stable")
    if rows["seed"].duplicated().any():
        raise ValueError(f"the conditions {conditions} pick several rows per seed; add a condition")
    return rows[value].to_numpy(dtype=float)


def compare_to_noise(a, b) -> dict:
    """The noise rule on per-seed values: ``{"diff", "noise", "verdict"}``.

    ``verdict`` is ``"better"`` (``diff > noise``), ``"worse"`` (``diff < -noise``)
    or ``"within noise"``; ``noise`` is the pooled sample std ``sqrt((var a + var b) / 2)``.
    """
    a = pd.Series(a, dtype=float)
    b = pd.Series(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the noise rule needs at least two seeds on each side")
    diff = float(a.mean() - b.mean())
    noise = float(math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
    verdict = "better" if diff > noise else "worse" if diff < -noise else "within noise"
    return {"diff": diff, "noise": noise, "verdict": verdict}


def noise_phrase(result: dict, scale: float = 100.0, digits: int = 1, unit: str = " points") -> str:
    """Words for :func:`compare_to_noise`'s result, e.g. ``"better by 1.2 points (noise 0.4)"``."""
    size = f"{abs(result['diff']) * scale:.{digits}f}{unit}"
    noise = f"noise {result['noise'] * scale:.{digits}f}"
    if result["verdict"] == "within noise":
        return f"within noise ({'+' if result['diff'] >= 0 else '-'}{size}, {noise})"
    return f"{result['verdict']} by {size} ({noise})"


def claim_verdict(a, b, kind: str = "better") -> dict:
    """Test a claim "``a`` is larger than ``b``" (``kind="better"``) or "``a`` is not smaller
    than ``b``" (``kind="not worse"``) on per-seed values, with the noise rule.

    "better" holds when :func:`compare_to_noise` says ``"better"``; "not worse"
    when it does not say ``"worse"``. Returns ``{"diff", "noise", "holds"}``.
    """
    if kind not in ("better", "not worse"):
        raise ValueError(f"kind must be 'better' or 'not worse', got {kind!r}")
    result = compare_to_noise(a, b)
    holds = result["verdict"] == "better" if kind == "better" else result["verdict"] != "worse"
    return {"diff": result["diff"], "noise": result["noise"], "holds": bool(holds)}


def overall_verdict(holds: Sequence[bool]) -> str:
    """"holds" when a claim holds in every case, "does not hold" in none, "mixed" otherwise."""
    holds = list(holds)
    if not holds:
        raise ValueError("no cases")
    if all(holds):
        return "holds"
    if not any(holds):
        return "does not hold"
    return "mixed"
