"""The book's claim table: every claim of the SKD paper and of the seed notes that the book
checks, as one small declarative record each (:data:`CLAIMS`), judged by the one noise rule.

A claim reads "A beats B" (``kind="better"``) or "A is as good as B" (``kind="not worse"``)
and names where its per-seed numbers come from:

* ``study="results"``: rows of :func:`skdtutor.studies.results_table` (``return_runs=True``),
  or of :func:`skdtutor.skd_study.skd_study` reduced by :func:`skd_study_rows`
  (columns ``dataset``, ``method``, ``T``, ``seed``, ``test_acc``); one case per dataset;
* ``study="semi"``: rows of :func:`skdtutor.semi_study.semi_supervised` (plus
  ``fraction``, ``targets``, ``teacher_labels``); one case per dataset and labelled fraction.

Each side of a claim is an :class:`Arm`: the :func:`skdtutor.stats.select` conditions of its
rows, where ``T=REF`` means the reference temperature and ``T=BEST`` the temperature with the
best mean test accuracy of that method on that dataset (picked on the test set, so a high
bar), or, with ``spread=True``, the per-seed spread (max − min) of the accuracy over the
temperatures the rows hold. ``variants`` repeat a claim for several losses (e.g. KD and SKD),
each a case of its own: a variant's conditions apply to every arm that does not set that
column itself (so "KD, soft vs CE" and "SKD, soft vs CE" share the CE arm).

A case holds when :func:`skdtutor.stats.claim_verdict` says so; a claim **holds** when every
case holds, **does not hold** when none does, and is **mixed** otherwise
(:func:`skdtutor.stats.overall_verdict`). :func:`claim_table` gives one row per claim,
:func:`case_table` one row per case, :func:`case_grid` the cases as one table for the page;
:func:`quote` and :func:`listing` are the words the chapters glue into their text.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .stats import claim_verdict, compare_to_noise, overall_verdict, select, signed

__all__ = ["REF", "BEST", "Arm", "Claim", "CLAIMS", "claim", "skd_study_rows", "case_table",
           "claim_table", "quote", "listing", "case_list", "case_grid"]

REF = "ref"    # T = the reference temperature of the table (claim_table's T_ref)
BEST = "best"  # T = the temperature with the best mean test accuracy (on the test set)


@dataclass(frozen=True)
class Arm:
    """One side of a claim: the rows ``select(rows, **where)`` picks, one value per seed."""

    where: dict                 # column -> value (``T`` may be REF or BEST)
    spread: bool = False        # per seed: max - min of the value over the temperatures


@dataclass(frozen=True)
class Claim:
    """A claim "``a`` beats ``b``" (``kind="better"``) or "``a`` is as good as ``b``"."""

    key: str                    # glue-safe id, e.g. "kd_vs_ce"
    text: str                   # the claim, as the table prints it
    short: str                  # a few words, for lists in the text
    source: str                 # where it is claimed (paper section, seed notes)
    kind: str                   # "better" or "not worse"
    study: str                  # "results" or "semi": which rows it reads
    a: Arm
    b: Arm
    variants: dict = field(default_factory=dict)  # label -> conditions for the arms that do not set them


_FEW = {"teacher_labels": "labelled part"}
_LOSSES = {"KD": {"method": "kd"}, "SKD": {"method": "skd"}}

CLAIMS = (
    Claim("kd_vs_ce", "Soft targets from a teacher train a better student than the labels "
          "alone (KD beats CE).", "KD beats CE", "seed notes, 'Why it works?'; Hinton et al.",
          "better", "results", Arm({"method": "kd", "T": REF}), Arm({"method": "ce"})),
    Claim("skd_vs_kd", "SKD trains a better student than KD.", "SKD beats KD",
          "Guo et al., abstract and result tables", "better", "results",
          Arm({"method": "skd", "T": REF}), Arm({"method": "kd", "T": REF})),
    Claim("skd_robust_T", "SKD is robust to the temperature: its accuracy varies less over T "
          "than KD's.", "SKD is robust to T", "Guo et al., abstract", "better", "results",
          Arm({"method": "kd"}, spread=True), Arm({"method": "skd"}, spread=True)),
    Claim("dice_loss", "A Dice loss between the softened distributions can stand in for KD's "
          "KL term.", "a Dice loss can replace the KL", "seed notes, 'Thoughts'", "not worse",
          "results", Arm({"method": "dice", "T": REF}), Arm({"method": "kd", "T": REF})),
    Claim("dice_search", "The two-component Dice search picks a temperature as good as the best "
          "one tried.", "the Dice search picks a good T", "seed notes, 'Thoughts'", "not worse",
          "results", Arm({"method": "kd@dice"}), Arm({"method": "kd", "T": BEST})),
    Claim("unlabelled", "Soft targets let a student learn from unlabelled data (with few labels, "
          "KD and SKD beat CE on the labels alone).", "soft targets put unlabelled data to use",
          "seed notes, 'Model Confidence vs Model Generalization'; Hinton et al.", "better", "semi",
          Arm({**_FEW, "targets": "soft"}), Arm({**_FEW, "targets": "labels only", "method": "ce"}),
          variants=_LOSSES),
    Claim("soft_vs_hard", "Soft targets carry more than the teacher's arg-max (soft targets beat "
          "hard pseudo-labels, for KD and SKD).", "soft targets beat pseudo-labels",
          "seed notes, class discrepancy", "better", "semi",
          Arm({**_FEW, "targets": "soft"}), Arm({**_FEW, "targets": "hard"}), variants=_LOSSES),
    Claim("better_teacher", "With few labels, a teacher trained on all the labels trains a better "
          "KD student than a teacher trained on the same few labels.",
          "a better teacher helps with few labels", "Hinton et al. (transfer set); chapter 5",
          "better", "semi", Arm({"teacher_labels": "all", "targets": "soft", "method": "kd"}),
          Arm({**_FEW, "targets": "soft", "method": "kd"})),
)


def claim(key: str, claims=CLAIMS) -> Claim:
    """The claim with this key."""
    for c in claims:
        if c.key == key:
            return c
    raise KeyError(f"no claim {key!r}; known: {', '.join(c.key for c in claims)}")


def skd_study_rows(study) -> pd.DataFrame:
    """The rows of an :class:`~skdtutor.skd_study.SKDStudy` that a ``"results"`` claim
    reads: CE, and KD, SKD and Dice from the default-width teacher at the study's multiplier
    (no ablation), with the columns of :func:`skdtutor.studies.results_table`'s runs."""
    runs = study.runs
    teacher = pd.to_numeric(runs["teacher"], errors="coerce")
    mult = runs["multiplier"] if "multiplier" in runs else pd.Series(np.nan, index=runs.index)
    raw = runs["ce_on_raw"] if "ce_on_raw" in runs else pd.Series(False, index=runs.index)
    keep = ((runs["method"] == "ce")
            | (runs["method"].isin(["kd", "skd", "dice"]) & (teacher == study.default_width)
               & (mult.isna() | (mult == study.settings["multiplier"])) & (raw != True)))  # noqa: E712
    return runs[keep].reset_index(drop=True)


def _temperature(rows, where, T_ref):
    """``where`` with ``T`` resolved: REF -> T_ref, BEST -> the best mean temperature."""
    where = dict(where)
    if where.get("T") == REF:
        where["T"] = float(T_ref)
    elif where.get("T") == BEST:
        part = select(rows, **{k: v for k, v in where.items() if k != "T"})
        means = part.groupby("T")["test_acc"].mean()
        if means.empty:
            raise ValueError(f"no rows for {where}")
        where["T"] = float(means.idxmax())
    return where


def _values(rows, arm: Arm, extra: dict, T_ref) -> tuple[np.ndarray, dict]:
    where = _temperature(rows, {**extra, **arm.where}, T_ref)  # the arm's own conditions win
    part = select(rows, **where)
    if part.empty:
        raise ValueError(f"no rows for {where}")
    if arm.spread:
        by_seed = part.groupby("seed")["test_acc"]
        return (by_seed.max() - by_seed.min()).sort_index().to_numpy(dtype=float), where
    part = part.sort_values("seed", kind="stable")
    if part["seed"].duplicated().any():
        raise ValueError(f"the conditions {where} pick several rows per seed")
    return part["test_acc"].to_numpy(dtype=float), where


def _groups(rows, study):
    keys = ["dataset"] if study == "results" else ["dataset", "fraction"]
    for values, part in rows.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        label = str(values[0]) + ("" if study == "results" else f" {100 * float(values[1]):g} %")
        yield dict(zip(keys, values)), label, part


def case_table(results: pd.DataFrame | None = None, semi: pd.DataFrame | None = None, *,
               T_ref: float = 4.0, claims=CLAIMS) -> pd.DataFrame:
    """One row per case of every claim whose rows are given: ``key``, ``case`` (e.g.
    ``"digits"``, ``"mnist1d 10 % (SKD)"``), ``dataset``, ``fraction``, ``variant``, ``mean_a``,
    ``mean_b``, ``diff`` and ``noise`` (fractions of 1, as the rows), ``comparison``
    (:func:`skdtutor.stats.compare_to_noise`'s verdict of a against b) and ``holds``."""
    sources = {"results": results, "semi": semi}
    out = []
    for c in claims:
        rows = sources[c.study]
        if rows is None:
            continue
        for keys, label, part in _groups(rows, c.study):
            for variant, extra in (c.variants or {"": {}}).items():
                a, where_a = _values(part, c.a, extra, T_ref)
                b, where_b = _values(part, c.b, extra, T_ref)
                v = claim_verdict(a, b, kind=c.kind)
                out.append({"key": c.key, "case": label + (f" ({variant})" if variant else ""),
                            "dataset": keys["dataset"], "fraction": keys.get("fraction", np.nan),
                            "variant": variant, "T_a": where_a.get("T", np.nan),
                            "T_b": where_b.get("T", np.nan), "mean_a": a.mean(), "mean_b": b.mean(),
                            "diff": v["diff"], "noise": v["noise"],
                            "comparison": compare_to_noise(a, b)["verdict"], "holds": v["holds"]})
    return pd.DataFrame(out)


def claim_table(results: pd.DataFrame | None = None, semi: pd.DataFrame | None = None, *,
                T_ref: float = 4.0, claims=CLAIMS) -> pd.DataFrame:
    """One row per claim whose rows are given: ``key``, ``claim``, ``short``, ``source``,
    ``kind``, ``cases`` (count), ``held`` (cases that hold), ``measured`` (per case "difference
    ± noise" in points, ✗ where it fails) and ``verdict`` ("holds", "mixed", "does not
    hold"). ``table.attrs["cases"]`` is the :func:`case_table`."""
    cases = case_table(results, semi, T_ref=T_ref, claims=claims)
    rows = []
    for c in claims:
        part = cases[cases["key"] == c.key] if len(cases) else cases
        if part.empty:
            continue
        measured = "; ".join(f"{r.case}: {signed(100 * r.diff, 2)} ± {100 * r.noise:.2f}"
                             + ("" if r.holds else " ✗") for r in part.itertuples())
        rows.append({"key": c.key, "claim": c.text, "short": c.short, "source": c.source,
                     "kind": c.kind, "cases": len(part), "held": int(part["holds"].sum()),
                     "measured": measured, "verdict": overall_verdict(part["holds"].tolist())})
    table = pd.DataFrame(rows)
    table.attrs["cases"] = cases
    return table


def quote(table: pd.DataFrame, key: str, detail: bool = True) -> str:
    """Markdown for one claim's verdict with its cases, e.g.
    ``"**mixed** (digits ✗; mnist1d ✓)"``, or with ``detail=False`` only how many hold,
    ``"**mixed** (1 of 2 cases hold)"``."""
    row = table[table["key"] == key]
    if row.empty:
        raise KeyError(f"claim {key!r} is not in the table")
    if not detail:
        held, n = int(row["held"].iloc[0]), int(row["cases"].iloc[0])
        return f"**{row['verdict'].iloc[0]}** ({held} of {n} case{'s' if n != 1 else ''} hold{'s' if held == 1 else ''})"
    cases = table.attrs["cases"]
    marks = "; ".join(f"{r.case} {'✓' if r.holds else '✗'}" for r in cases[cases["key"] == key].itertuples())
    return f"**{row['verdict'].iloc[0]}** ({marks})"


def listing(table: pd.DataFrame, verdict: str) -> str:
    """The short names of the claims with this verdict, ``"; "``-joined, or ``"none"``."""
    return "; ".join(table.loc[table["verdict"] == verdict, "short"]) or "none"


def case_list(cases: pd.DataFrame, code: bool = True) -> str:
    """Markdown naming some rows of a :func:`case_table`, e.g. ``"`digits` at 5 % (KD);
    `mnist1d` at 10 % (SKD)"``, ``"; "``-joined, or ``"none"`` (``code``: names as code)."""
    def name(r):
        where = f"`{r.dataset}`" if code else str(r.dataset)
        where += "" if pd.isna(r.fraction) else f" at {100 * float(r.fraction):g} %"
        return where + (f" ({r.variant})" if r.variant else "")
    return "; ".join(name(r) for r in cases.itertuples()) or "none"


MARKS = {"better": "✓", "within noise": "≈", "worse": "✗"}  # compare_to_noise's verdicts, in a cell


def case_grid(cases: pd.DataFrame, labels: dict, default_variant: str = "KD") -> pd.DataFrame:
    """The cases of some claims as one table that fits the page: one row per dataset (and
    labelled fraction, shown as ``"10 %"``), one column per (claim, variant), headed by
    ``labels[key]`` and the variant (``default_variant`` for a claim without variants), in
    the order of ``labels``; each cell the difference of the means in points and the mark of
    the noise rule's verdict, ``"+1.2 ✓"`` (:data:`MARKS`). ``cases`` is a :func:`case_table`."""
    part = cases[cases["key"].isin(list(labels))]
    cells = [f"{signed(100 * d, 1)} {MARKS[w]}" for d, w in zip(part["diff"], part["comparison"])]
    grid = part.assign(claim=part["key"].map(labels), loss=part["variant"].replace("", default_variant),
                       cell=cells)
    rows = ["dataset"] if grid["fraction"].isna().all() else ["dataset", "fraction"]
    grid = grid.pivot(index=rows, columns=["claim", "loss"], values="cell")
    order = list(dict.fromkeys(grid.columns.get_level_values("loss")))
    grid = grid[[(c, v) for c in labels.values() for v in order if (c, v) in grid.columns]]
    if len(rows) == 2:
        grid = grid.rename(index=lambda f: f"{100 * f:g} %", level=1)
    return grid.rename_axis([None] * len(rows)).rename_axis([None, None], axis=1)
