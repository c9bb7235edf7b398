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
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["seed_summary", "mean_pm_std", "format_table", "select", "seed_values",
           "compare_to_noise", "signed", "noise_phrase", "claim_verdict", "overall_verdict",
           "compare_runs", "beats", "select_per_seed", "best_setting", "on_cases", "verdicts_phrase",
           "points_relation", "tally_phrase",
           "overall_effect", "temperature_table"]


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


def signed(value: float, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals and its sign (``"+0.3"``, ``"-1.2"``); a value that
    rounds to zero prints without one (``"0.0"``, never ``"+0.0"`` or ``"-0.0"``)."""
    if not math.isfinite(value):
        return f"{value:.{digits}f}"  # "nan", "inf", "-inf": no sign rule to apply
    text = f"{abs(value):.{digits}f}"
    return text if float(text) == 0 else ("+" if value > 0 else "-") + text


def noise_phrase(result: dict, scale: float = 100.0, digits: int = 1, unit: str = " points") -> str:
    """Words for :func:`compare_to_noise`'s result, e.g. ``"better by 1.2 points (noise 0.4)"``.

    Where the difference and the noise would print the same (``+0.5 points, noise 0.5``) but
    differ, up to two more digits are shown, so the numbers show why the verdict fell as it did.
    """
    diff, noise_value = abs(result["diff"]) * scale, result["noise"] * scale
    while digits < 3 and diff != noise_value and f"{diff:.{digits}f}" == f"{noise_value:.{digits}f}":
        digits += 1
    size = f"{diff:.{digits}f}{unit}"
    noise = f"noise {noise_value:.{digits}f}"
    if result["verdict"] == "within noise":
        return f"within noise ({signed(result['diff'] * scale, digits)}{unit}, {noise})"
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


# ------------------------------------------------- runs: the rule on frames, per-seed choices
def _run_values(runs, value: str) -> np.ndarray:
    return (runs[value] if isinstance(runs, pd.DataFrame) else pd.Series(runs)).to_numpy(dtype=float)


def compare_runs(a, b, value: str = "test_acc") -> dict:
    """:func:`compare_to_noise` on the ``value`` column of two sets of runs (frames with one
    row per seed, or per-seed values)."""
    return compare_to_noise(_run_values(a, value), _run_values(b, value))


def beats(a, b, value: str = "test_acc") -> bool:
    """True when runs ``a`` are *better* than runs ``b`` by the noise rule (mean ``value``
    higher by more than the pooled seed std)."""
    return compare_runs(a, b, value)["verdict"] == "better"


def select_per_seed(runs: pd.DataFrame, column: str, chosen: Mapping[int, float]) -> pd.DataFrame:
    """For every seed of ``chosen`` the rows of that seed whose ``column`` equals its chosen
    value, e.g. each seed's KD student at the temperature that seed's search picked:
    ``select_per_seed(kd, "T", {0: 4.0, 1: 8.0, 2: 4.0})``. A seed with no such row is an error."""
    parts = []
    for seed, target in chosen.items():
        part = runs[(runs["seed"] == seed) & (runs[column] == target)]
        if part.empty:
            raise ValueError(f"no run of seed {seed} has {column} = {target!r}")
        parts.append(part)
    return pd.concat(parts)


def best_setting(runs: pd.DataFrame, by: str = "T", value: str = "val_acc"):
    """The value of ``by`` whose runs have the highest mean ``value`` (a grid search: on
    ``val_acc`` the honest choice, on ``test_acc`` the oracle); ties go to the smallest."""
    means = runs.groupby(by)[value].mean().sort_index()
    return means.idxmax()


def on_cases(flags: Mapping[str, bool], noun: str = "dataset") -> str:
    """Where a claim holds, in words: ``"both datasets"``, ``"neither dataset"``, ``"all 3
    datasets"``, ``"no dataset"`` or the names that hold (in code font) followed by ``only``."""
    hit = [f"`{name}`" for name, flag in flags.items() if flag]
    n = len(flags)
    if n and len(hit) == n:
        return f"both {noun}s" if n == 2 else f"all {n} {noun}s" if n > 2 else hit[0]
    if not hit:
        return f"neither {noun}" if n == 2 else f"no {noun}"
    return " and ".join(hit) + " only"


def verdicts_phrase(verdicts: Mapping[str, str], noun: str = "dataset") -> str:
    """Noise-rule verdicts per case in words: ``"within noise on both datasets"`` when they
    agree, else ``"better on `mnist1d`, within noise on `digits`"`` (cases in the given order)."""
    if not verdicts:
        raise ValueError("no cases")
    groups: dict[str, list[str]] = {}
    for name, verdict in verdicts.items():
        groups.setdefault(verdict, []).append(name)
    if len(groups) == 1:
        verdict = next(iter(groups))
        return f"{verdict} on {on_cases(dict.fromkeys(verdicts, True), noun)}"
    return ", ".join(f"{v} on " + " and ".join(f"`{n}`" for n in names) for v, names in groups.items())


def points_relation(value: float, more: str = "above", less: str = "below", level: str = "level with",
                    digits: int = 1, unit: str = " points") -> str:
    """A signed difference in words: ``"0.4 points above"``, ``"1.2 points below"``, or ``level``
    where it rounds to zero; ``more`` and ``less`` name the two directions (``"ahead of"``, ``"behind"``)."""
    size = f"{abs(value):.{digits}f}"
    return level if float(size) == 0 else f"{size}{unit} {more if value > 0 else less}"


def tally_phrase(verdicts: Sequence[str], noun: str = "temperature") -> str:
    """Noise-rule verdicts over a grid in words: ``"better at all 3 temperatures"``, or
    ``"worse at 2 and within noise at 1 of the 3 temperatures"`` (``noun`` singular)."""
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("no verdicts")
    n, counts = len(verdicts), [(verdicts.count(v), v) for v in ("better", "worse", "within noise")]
    for k, v in counts:
        if k == n:
            return f"{v} at the one {noun}" if n == 1 else f"{v} at all {n} {noun}s"
    parts = [f"{v} at {k}" for k, v in counts if k]
    return ", ".join(parts[:-1]) + " and " + parts[-1] + f" of the {n} {noun}s"


def overall_effect(verdicts) -> str:
    """One word for several noise-rule verdicts of "a against b" (one per case): ``"helps"``
    (all better), ``"hurts"`` (all worse), ``"neither helps nor hurts"`` (all within noise),
    ``"helps in part"`` (some better, none worse), ``"does not help"`` (some worse, none
    better) or ``"gives mixed results"`` (some better and some worse)."""
    found = set(verdicts.values() if isinstance(verdicts, Mapping) else verdicts)
    if not found:
        raise ValueError("no cases")
    if {"better", "worse"} <= found:
        return "gives mixed results"
    if found == {"better"}:
        return "helps"
    if found == {"worse"}:
        return "hurts"
    if found == {"within noise"}:
        return "neither helps nor hurts"
    return "helps in part" if "better" in found else "does not help"


def temperature_table(runs: pd.DataFrame, index: Sequence[str] = ("dataset", "method"),
                      value: str = "test_acc", scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """Mean ± std over the seeds of ``value`` (:func:`mean_pm_std`, in percent by default),
    one row per ``index`` group, one column ``"T = t"`` per temperature of the runs (ascending).
    A group without a temperature (CE: ``T`` is NaN) shows its one value in every column;
    a missing cell is ``"—"``."""
    index = list(index)
    summary = seed_summary(runs, by=(*index, "T"), value=value)
    summary["cell"] = [mean_pm_std(m, sd, scale, digits) for m, sd in zip(summary["mean"], summary["std"])]
    temps = sorted(summary["T"].dropna().unique())
    rows = {}
    for key, part in summary.groupby(index, sort=False):
        flat = part.loc[part["T"].isna(), "cell"]
        cells = dict(zip(part["T"], part["cell"]))
        rows[key] = {f"T = {t:g}": cells.get(t, flat.iloc[0] if len(flat) else "—") for t in temps}
    table = pd.DataFrame.from_dict(rows, orient="index")
    keys = [k if isinstance(k, tuple) else (k,) for k in rows]
    table.index = (pd.MultiIndex.from_tuples(keys, names=index) if len(index) > 1
                   else pd.Index([k[0] for k in keys], name=index[0]))
    return table
