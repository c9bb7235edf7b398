"""The studies behind the CLI (``python -m skdtutor compare`` / ``results``) and chapter 6.

A chapter and the command line call the same functions, so a table in the book
is regenerated exactly by the command printed next to it.

* :func:`compare` — methods × temperatures × seeds on one dataset;
* :func:`results_table` — :func:`compare` on every dataset, summarised (chapter 6).

The studies of chapters 3–6 are in :mod:`skdtutor.skd_study` and :mod:`skdtutor.semi_study`.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from . import cache as cache_mod
from . import data as data_mod
from . import distributed
from .config import ModelSpec, TrainConfig, setting_for
from .losses import METHODS, check_gamma, check_multiplier, check_temperature, make_loss
from .models import count_parameters
from .runs import plan, run_students
from .steps import resolve_device
from .stats import mean_pm_std, seed_summary
from .teachers import get_teacher
from .temperature import DEFAULT_TEMPERATURES, dice_choice_per_seed

__all__ = ["KD_AT_DICE", "RESULT_METHODS", "compare", "prepare_compare", "results_table", "seed_list",
           "loss_for", "diverged_note", "RESULTS_TABLE"]

KD_AT_DICE = "kd@dice"  # method name: KD at the temperature chosen by the Dice search
RESULT_METHODS = ("ce", "kd", "skd", "dice", KD_AT_DICE)
# The results table of chapter 6: ``results_table(**RESULTS_TABLE, return_runs=True)``; its
# command line (chapter 6 and the README) is ``python -m skdtutor results --dataset digits,mnist1d
# --seeds 0,1,2 --temperatures 1,4,16`` (a test parses it and compares with these settings).
RESULTS_TABLE = dict(datasets=("digits", "mnist1d"), seeds=(0, 1, 2), temperatures=(1.0, 4.0, 16.0))


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``seeds`` as a list: a count ``n`` means seeds ``0 .. n-1``; a list must hold distinct
    integers >= 0 (a repeated seed would repeat one run and fake a spread of 0)."""
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive count or a non-empty list, got {seeds!r}")
        return list(range(int(seeds)))
    try:
        out = list(seeds)
    except TypeError:
        raise ValueError(f"seeds must be a positive count or a list of integers, got {seeds!r}") from None
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0]
    if not out or bad:
        raise ValueError(f"seeds must be a positive count or a non-empty list of integers >= 0, "
                         f"got {seeds!r}")
    out = [int(s) for s in out]
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds {repeated} appear more than once; each seed is one independent run, "
                         "so pass distinct seeds")
    return out


def loss_for(method: str, **shared):
    """The registered loss ``method`` with those of the ``shared`` settings it has
    (``T``, ``gamma``, ``multiplier``, ...); the others are not its hyperparameters."""
    names = METHODS[method].hparam_names()
    return make_loss(method, **{k: v for k, v in shared.items() if k in names})


def _spec(base: ModelSpec, name: str | None, width: int | None) -> ModelSpec:
    """``base`` with another family and/or width (a new family starts from its defaults)."""
    spec = base if name is None or name == base.name else ModelSpec(name)
    return spec if width is None else spec.replace(width=width)


def _epochs(config, epochs):
    return config if epochs is None else config.replace(epochs=epochs)


def compare(dataset: str = "mnist1d", teacher: str | None = None, student: str | None = None,
            methods: Sequence[str] = ("ce", "kd", "skd"), temperatures: Sequence[float] = (1, 4, 16),
            seeds: int | Sequence[int] = 3, gamma: float = 0.9, multiplier: float = 2.0,
            teacher_width: int | None = None, student_width: int | None = None,
            teacher_epochs: int | None = None, student_epochs: int | None = None,
            device="auto", root=None, cache=None, use_cache: bool = True,
            batched: bool | None = None, progress: bool = False,
            dice_temperatures: Sequence[float] = DEFAULT_TEMPERATURES) -> pd.DataFrame:
    """Train (or reuse) a teacher, then one student per (method, temperature, seed).

    A method without a temperature (``ce``) runs once per seed. ``seeds`` is a
    count (seeds ``0 .. seeds-1``) or an explicit list. Returns one row per run:
    method, T, gamma, multiplier, seed, test accuracy and the other final metrics,
    plus the teacher's and student's names and sizes. Architectures and epochs
    default to the dataset's :class:`~skdtutor.config.Setting`; ``None`` means
    "the setting's", any other value is validated (0 epochs is a ValueError).

    ``kd@dice`` is KD at the temperature chosen by the Dice search
    (:func:`skdtutor.temperature.dice_temperature_search`, over
    ``dice_temperatures``): for every seed, the teacher's and that seed's CE
    student's logits on the validation split choose ``T``, then that seed's KD
    student is trained at it (the row's ``T``). The CE students are trained for
    this even when ``ce`` is not among the methods (their rows are then left
    out). ``runs.attrs["dice_search"]`` holds the search tables as plain dicts,
    ``{seed: {"T": [...], "student_term": [...], "label_term": [...], "total": [...]}}``.

    Every argument is validated before anything trains (:func:`prepare_compare`):
    a bad value is a ValueError naming it, and no work is lost to a late failure.
    """
    return _run_compare(prepare_compare(**locals()))


@dataclass(frozen=True)
class _ComparePlan:
    """A validated :func:`compare` call: what to train, nothing trained yet."""

    dataset: str
    methods: list
    seeds: list
    losses: list
    gamma: float
    dice_temperatures: tuple
    t_spec: ModelSpec
    t_cfg: TrainConfig
    s_spec: ModelSpec
    s_cfg: TrainConfig
    root: object
    cache: object
    use_cache: bool
    batched: bool | None
    progress: bool


def prepare_compare(dataset: str = "mnist1d", teacher: str | None = None, student: str | None = None,
                    methods: Sequence[str] = ("ce", "kd", "skd"),
                    temperatures: Sequence[float] = (1, 4, 16), seeds: int | Sequence[int] = 3,
                    gamma: float = 0.9, multiplier: float = 2.0, teacher_width: int | None = None,
                    student_width: int | None = None, teacher_epochs: int | None = None,
                    student_epochs: int | None = None, device="auto", root=None, cache=None,
                    use_cache: bool = True, batched: bool | None = None, progress: bool = False,
                    dice_temperatures: Sequence[float] = DEFAULT_TEMPERATURES) -> _ComparePlan:
    """Validate every argument of :func:`compare` (same names) without training anything:
    hyperparameters (those only ``kd@dice`` uses included), seeds, architectures, epochs,
    the device and the cache folder. Raises ValueError naming the first bad one."""
    setting = setting_for(dataset)
    seeds = seed_list(seeds)
    methods = [str(m).lower() for m in methods]
    unknown = [m for m in methods if m not in METHODS and m != KD_AT_DICE]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown or methods!r}; choose from "
                         f"{', '.join([*METHODS, KD_AT_DICE])}")
    check_gamma(gamma)
    check_multiplier(multiplier)
    temperatures = list(temperatures)
    if not temperatures:
        raise ValueError("temperatures is empty; pass at least one temperature")
    for T in temperatures:
        check_temperature(T)
    at_dice = KD_AT_DICE in methods
    dice_temperatures = tuple(dice_temperatures)
    if at_dice:
        if not dice_temperatures:
            raise ValueError("dice_temperatures is empty; pass the Dice search's candidate temperatures")
        for T in dice_temperatures:
            check_temperature(T)
    shared = dict(gamma=gamma, multiplier=multiplier)
    losses = []
    for method in methods:
        if method == KD_AT_DICE:
            continue
        if "T" in METHODS[method].hparam_names():
            losses += [loss_for(method, T=T, **shared) for T in temperatures]
        else:
            losses.append(loss_for(method, **shared))
    if at_dice and "ce" not in methods:
        losses.insert(0, make_loss("ce"))
    t_spec = _spec(setting.teacher, teacher, teacher_width)
    s_spec = _spec(setting.student, student, student_width)
    t_cfg = _epochs(setting.teacher_train, teacher_epochs).replace(device=device)
    s_cfg = _epochs(setting.student_train, student_epochs).replace(device=device)
    resolve_device(device)  # "cuda" without a GPU fails here, not after the data is loaded
    if use_cache:
        cache_mod.check_writable(cache)
    return _ComparePlan(dataset, methods, seeds, losses, float(gamma), dice_temperatures, t_spec,
                        t_cfg, s_spec, s_cfg, root, cache, bool(use_cache), batched, bool(progress))


def _run_compare(p: _ComparePlan) -> pd.DataFrame:
    """Train what a validated plan asks for (see :func:`compare`)."""
    methods, seeds, gamma, cache, use_cache = p.methods, p.seeds, p.gamma, p.cache, p.use_cache
    at_dice = KD_AT_DICE in methods
    data = distributed.in_turn(lambda: data_mod.load(p.dataset, root=p.root))  # torchrun: no racing downloads
    t_spec, s_spec, s_cfg = p.t_spec, p.s_spec, p.s_cfg
    t_model, t_logits, _ = get_teacher(data, t_spec, p.t_cfg, cache=cache, use_cache=use_cache,
                                       progress=p.progress)
    teachers = {t_spec.name: t_logits}

    def students(losses, seeds, keep_logits=False):
        return run_students(data, teachers, s_spec, plan(losses, seeds, t_spec.name), s_cfg,
                            batched=p.batched, progress=p.progress, keep_logits=keep_logits,
                            cache=cache, use_cache=use_cache)

    result = students(p.losses, seeds, keep_logits=at_dice)
    runs, searches = result.rows, {}
    if at_dice:
        ce_val = {int(seed): logits["val"]  # a diverged CE student cannot choose a temperature
                  for logits, method, seed, diverged in zip(result.logits, runs["method"],
                                                            runs["seed"], runs["diverged"])
                  if method == "ce" and not diverged}
        per_seed, tables = dice_choice_per_seed(t_logits.val, ce_val, data.y_val, p.dice_temperatures)
        # plain lists in attrs: pandas compares attrs
        searches = {seed: table.to_dict("list") for seed, table in tables.items()}
        chosen: dict[float, list[int]] = {}
        for seed, T in per_seed.items():
            chosen.setdefault(T, []).append(seed)
        parts = [runs if "ce" in methods else runs[runs["method"] != "ce"]]
        for T, t_seeds in chosen.items():
            part = students([make_loss("kd", T=T, gamma=gamma)], t_seeds).rows
            part["method"] = KD_AT_DICE
            parts.append(part)
        order = {m: i for i, m in enumerate(methods)}  # rows in the order of the methods asked for
        runs = pd.concat(parts, ignore_index=True).sort_values(
            "method", key=lambda col: col.map(order), kind="stable", ignore_index=True)
    runs.insert(0, "dataset", data.name)
    runs["teacher"] = t_spec.name
    runs["teacher_params"] = count_parameters(t_model)
    runs["teacher_test_acc"] = (t_logits.test.argmax(-1) == data.y_test).float().mean().item()
    if "T" in runs:
        runs.loc[runs["method"] == "ce", "T"] = float("nan")
    runs.attrs["dice_search"] = searches
    return runs


def _t_labels(runs: pd.DataFrame) -> pd.Series:
    """``T`` as text per row; for ``kd@dice`` the temperatures the search chose, ``/``-joined."""
    labels = []
    for (_, method), part in runs.groupby(["dataset", "method"], sort=False):
        if method == KD_AT_DICE:
            label = "/".join(f"{t:g}" for t in sorted(part["T"].unique()))
            labels.append(pd.Series(label, index=part.index))
        else:
            labels.append(part["T"].map(lambda t: "—" if pd.isna(t) else f"{t:g}"))
    return pd.concat(labels)


def results_table(datasets: str | Sequence[str] = ("digits", "mnist1d"), seeds: int | Sequence[int] = 3,
                  temperatures: Sequence[float] = (1, 4, 16),
                  methods: Sequence[str] = RESULT_METHODS, *, return_runs: bool = False,
                  **compare_kwargs):
    """The book's results table: :func:`compare` on every dataset, one row per (dataset, method, T).

    This is what ``python -m skdtutor results`` prints. ``compare_kwargs`` go to
    :func:`compare` (gamma, multiplier, epochs, device, cache, dice_temperatures, ...).
    Columns: dataset, method, T (for ``kd@dice`` the temperatures the search chose,
    ``/``-separated when seeds disagree), mean and std of the test accuracy (sample
    std over seeds), n (seeds that trained), ``test_acc`` (``mean ± std`` in %), the
    teacher's and student's architecture, parameter count and the teacher's test
    accuracy, and ``diverged`` (seeds whose training diverged: they have no accuracy
    and are left out of mean, std and n; see :func:`diverged_note`).
    With ``return_runs=True`` returns ``(table, runs)``, ``runs`` holding one row per
    student (the CLI's ``--csv``).
    """
    if isinstance(datasets, str):
        datasets = [d.strip() for d in datasets.split(",") if d.strip()]
    if not datasets:
        raise ValueError("datasets is empty; pass at least one dataset name")
    # every dataset's arguments are validated before the first one trains
    plans = [prepare_compare(d, methods=methods, temperatures=temperatures, seeds=seeds, **compare_kwargs)
             for d in datasets]
    parts = [_run_compare(p) for p in plans]
    searches = {part["dataset"].iloc[0]: part.attrs.get("dice_search", {}) for part in parts}
    for part in parts:
        part.attrs = {}
    runs = pd.concat(parts, ignore_index=True)
    runs.attrs["dice_search"] = searches  # {dataset: {seed: search table as a dict of lists}}
    keys = ["dataset", "method", "T_label"]
    runs_l = runs.assign(T_label=_t_labels(runs))
    table = seed_summary(runs_l, by=keys)
    meta = runs_l.groupby(keys, sort=False).agg(
        seeds=("seed", lambda s: ",".join(str(int(v)) for v in s)),
        teacher=("teacher", "first"), teacher_params=("teacher_params", "first"),
        teacher_test_acc=("teacher_test_acc", "first"), student=("student", "first"),
        student_params=("student_params", "first")).reset_index()
    table = table.merge(meta, on=keys).rename(columns={"T_label": "T"})
    if "diverged" in runs_l:  # how many seeds of a row diverged (left out of mean, std and n)
        table["diverged"] = runs_l.groupby(keys, sort=False)["diverged"].sum().astype(int).to_numpy()
    table.insert(3, "test_acc", [mean_pm_std(m, s) for m, s in zip(table["mean"], table["std"])])
    return (table, runs) if return_runs else table


def diverged_note(runs: pd.DataFrame) -> str:
    """A sentence naming the runs that diverged (left out of every summary), or ``""``."""
    if "diverged" not in runs or not runs["diverged"].fillna(False).astype(bool).any():
        return ""
    bad = runs[runs["diverged"].fillna(False).astype(bool)]
    names = []
    for _, r in bad.iterrows():
        T = r.get("T", float("nan"))
        where = f"{r['dataset']} " if "dataset" in r else ""
        names.append(f"{where}{r['method']}{'' if pd.isna(T) else f' T={T:g}'} seed {int(r['seed'])}")
    return (f"{len(bad)} of {len(runs)} runs diverged (non-finite loss or weights) and are left out "
            f"of the means: {'; '.join(names)}")
