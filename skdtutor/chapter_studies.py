"""The studies of chapters 3–5: the SKD study (:func:`skd_study`, chapters 3 and 4) and
distillation with few labels (:func:`semi_supervised`, chapters 5 and 6).

**Shared settings.** Chapters 3 and 4 read the same SKD students because they run the
same settings object, :data:`SKD_STUDY` (a frozen :class:`SKDStudySettings`: datasets,
seeds, temperatures, multipliers, teacher widths, ...), not because constants typed in
two notebooks happen to match::

    from skdtutor.chapter_studies import SKD_STUDY
    studies = {name: SKD_STUDY.run(name) for name in SKD_STUDY.datasets}

Chapters 5 and 6 likewise share :data:`SEMI_SUPERVISED` (``SEMI_SUPERVISED.runs()``).

Both train every student of a chapter in one :func:`skdtutor.runs.run_students`
call and keep the result in the cache, so a second chapter calling them with the
same arguments gets the same students back without training.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from . import cache as cache_mod
from . import data as data_mod
from .losses import CE, KD, SKD, DiceKD
from .models import count_parameters
from .progress import one_bar
from .runs import Member, plan, run_students
from .stats import seed_values, select
from .studies import seed_list
from .teachers import default_teacher, get_teacher, hard_targets, subset_teacher
from .config import setting_for

__all__ = ["SKDStudy", "SKDStudySettings", "SKD_STUDY", "skd_study", "semi_supervised",
           "SemiSupervisedSettings", "SEMI_SUPERVISED", "SEMI_VARIANTS", "RESULTS_TABLE"]


def _accuracy(logits, labels) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


# --------------------------------------------------------------------- SKD (chapters 3-4)
@dataclass
class SKDStudy:
    """What :func:`skd_study` trained: the students, their logits and the teachers."""

    runs: pd.DataFrame      # one row per student (see skdtutor.runs.run_students)
    logits: list            # per row of ``runs``: {"val": logits, "test": logits}
    teachers: pd.DataFrame  # one row per teacher width: params, accuracy, confidence
    teacher_logits: dict    # width -> TeacherLogits
    default_width: int      # the teacher of the temperature, multiplier, Dice and ablation runs
    settings: dict          # every setting of the study

    def select(self, **conditions) -> pd.DataFrame:
        """Rows of ``runs`` whose columns equal the given values (see :func:`skdtutor.stats.select`).

        ``study.select(method="kd", teacher=32)``; ``None`` matches NaN/None, a list any of its items.
        """
        return select(self.runs, **conditions)

    def rows(self, method: str, **where) -> pd.DataFrame:
        """The students of ``method`` in the study's main comparison, one row per seed and
        temperature: KD, SKD and Dice from the default-width teacher, SKD at the study's
        multiplier with the label term on projected logits (``ce`` has no teacher).
        ``where`` overrides or adds conditions: ``rows("skd", teacher=8, T=4)``,
        ``rows("skd", multiplier=0.5)``, ``rows("skd", ce_on_raw=True)``."""
        base = {} if method == "ce" else {"teacher": self.default_width}
        if method == "skd":
            base.update(multiplier=self.settings["multiplier"], ce_on_raw=False)
        return select(self.runs, method=method, **{**base, **where})

    def values(self, method: str, value: str = "test_acc", **where) -> np.ndarray:
        """Per-seed ``value`` (ordered by seed) of :meth:`rows`; ``where`` must pick one row
        per seed (e.g. give ``T``): ``study.values("kd", T=4)``."""
        return seed_values(self.rows(method, **where), value)


def _skd_plan(d, widths, temperatures, T, gamma, multiplier, multipliers, ablation):
    pairs = [(None, CE())]
    pairs += [(d, KD(T=float(t), gamma=gamma)) for t in temperatures]
    pairs += [(d, SKD(T=float(t), gamma=gamma, multiplier=float(multiplier))) for t in temperatures]
    pairs += [(d, DiceKD(T=float(t), gamma=gamma)) for t in temperatures]
    pairs += [(d, SKD(T=float(T), gamma=gamma, multiplier=float(m))) for m in multipliers]
    pairs += [(d, SKD(T=float(t), gamma=gamma, multiplier=float(multiplier), ce_on_raw=True))
              for t in ablation]
    for w in widths:
        pairs += [(w, KD(T=float(T), gamma=gamma)),
                  (w, SKD(T=float(T), gamma=gamma, multiplier=float(multiplier)))]
    return list(dict.fromkeys(pairs))  # each (teacher, loss) once, in first-seen order


@one_bar("skd_study")
def skd_study(data, seeds: Sequence[int] = (0, 1, 2), *,
              temperatures: Sequence[float] = (1, 2, 4, 8, 16), T: float = 4.0,
              gamma: float = 0.9, multiplier: float = 2.0,
              multipliers: Sequence[float] = (0.5, 1, 2, 3, 4, 6),
              teacher_widths: Sequence[int] = (4, 8, 16, 32), ablation_temperatures=None,
              epochs: int | None = None, device="auto", cache=None,
              use_cache: bool = True, progress="auto") -> SKDStudy:
    """The students that chapters 3 and 4 compare, trained as one stacked sweep.

    With the dataset's default :class:`~skdtutor.config.Setting` (``epochs``
    defaults to its student epochs), one student per seed for each of:

    * ``CE()``;
    * ``KD``, ``SKD`` (multiplier ``multiplier``) and ``DiceKD`` at every temperature
      of ``temperatures``, from the default-width teacher;
    * ``SKD`` at temperature ``T`` for every multiplier of ``multipliers``;
    * ``SKD(ce_on_raw=True)`` (the ablation) at every temperature of
      ``ablation_temperatures`` (default: ``T`` only);
    * ``KD`` and ``SKD`` at temperature ``T`` from a teacher of every width of
      ``teacher_widths`` (the capacity gap).

    Every teacher comes from :func:`~skdtutor.teachers.get_teacher` (cached), the
    students from one cached :func:`~skdtutor.runs.run_students` call.
    ``progress`` (True, False or ``"auto"``, see :mod:`skdtutor.progress`) shows one bar for all of it.
    """
    s = setting_for(data.name)
    t_cfg = s.teacher_train.replace(device=device)
    s_cfg = s.student_train.replace(device=device, **({} if epochs is None else {"epochs": epochs}))
    d = int(s.teacher.width)
    widths = sorted(set(int(w) for w in teacher_widths) | {d})
    ablation = (T,) if ablation_temperatures is None else tuple(ablation_temperatures)
    seeds = seed_list(seeds)  # every loss and seed validated before any teacher trains
    members = [Member(loss, seed, key)
               for key, loss in _skd_plan(d, widths, temperatures, T, gamma, multiplier, multipliers, ablation)
               for seed in seeds]
    if use_cache:
        cache_mod.check_writable(cache)
    teacher_rows, teacher_logits = [], {}
    for w in widths:
        model, logits, _ = get_teacher(data, s.teacher.replace(width=w), t_cfg, cache=cache,
                                       use_cache=use_cache)
        teacher_logits[w] = logits
        teacher_rows.append({"width": w, "params": count_parameters(model),
                             "test_acc": _accuracy(logits.test, data.y_test),
                             "train_logit_norm": logits.train.norm(dim=-1).mean().item(),
                             "train_max_prob": torch.softmax(logits.train, -1).max(-1).values.mean().item()})
    result = run_students(data, teacher_logits, s.student, members, s_cfg, keep_logits=True,
                          cache=cache, use_cache=use_cache)
    runs = result.rows
    runs.insert(0, "dataset", data.name)
    settings = dict(seeds=seeds, temperatures=list(temperatures), T=T, gamma=gamma,
                    multiplier=multiplier, multipliers=list(multipliers), teacher_widths=widths,
                    ablation_temperatures=list(ablation), epochs=s_cfg.epochs,
                    teacher=s.teacher.name, teacher_epochs=t_cfg.epochs, student=s.student.name,
                    student_width=s.student.width, student_depth=s.student.depth, lr=s_cfg.lr,
                    batch_size=s_cfg.batch_size)
    return SKDStudy(runs, result.logits, pd.DataFrame(teacher_rows), teacher_logits, d, settings)


@dataclass(frozen=True)
class SKDStudySettings:
    """Every setting of the SKD study that chapters 3 and 4 share (:data:`SKD_STUDY`).

    ``settings.run(dataset)`` is ``skd_study(dataset, **settings.study_kwargs())``: the
    same students (from the cache) in every chapter that runs the same settings.
    Epochs, models and learning rates come from :func:`~skdtutor.config.setting_for`.
    """

    datasets: tuple = ("digits", "mnist1d")   # the datasets both chapters compare on
    seeds: tuple = (0, 1, 2)                  # one student per seed and experiment
    temperatures: tuple = (1.0, 4.0, 16.0)    # KD, SKD and Dice-KD grid (chapter 4's Dice candidates)
    T: float = 4.0                            # temperature of the multiplier, capacity and ablation runs
    gamma: float = 0.9                        # weight of the distillation term
    multiplier: float = 2.0                   # SKD's multiplier m outside the multiplier sweep
    multipliers: tuple = (0.5, 2.0, 8.0)      # at T: m / T = 1/8, 1/2, 2, as the temperature sweep at m
    teacher_widths: tuple = (8, 32)           # CNN teacher widths of the capacity-gap runs
    ablation_temperatures: tuple = (4.0,)     # SKD(ce_on_raw=True) runs
    epochs: int | None = None                 # None: each dataset's student epochs

    def __post_init__(self):
        for f in ("datasets", "seeds", "temperatures", "multipliers", "teacher_widths",
                  "ablation_temperatures"):
            object.__setattr__(self, f, tuple(getattr(self, f)))

    def replace(self, **changes) -> "SKDStudySettings":
        """A copy with some settings changed (e.g. ``SKD_STUDY.replace(gamma=0.5)``)."""
        return dataclasses.replace(self, **changes)

    def study_kwargs(self) -> dict:
        """The keyword arguments of :func:`skd_study` (everything but ``datasets``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "datasets"}

    def run(self, dataset, **options) -> "SKDStudy":
        """:func:`skd_study` on ``dataset`` (a name or a loaded bundle) with these settings;
        ``options`` are its non-scientific arguments (``device``, ``cache``, ``use_cache``)."""
        bundle = data_mod.load(dataset) if isinstance(dataset, str) else dataset
        return skd_study(bundle, **self.study_kwargs(), **options)


SKD_STUDY = SKDStudySettings()  # the study of chapters 3 and 4


# ----------------------------------------------------------------- few labels (chapter 5)
def _describe_teachers(part, mask, data, teachers, models, epochs):
    """Per row: the size, epochs and accuracies of the teacher the row learnt from."""
    own = ["all" if t == "all" else "soft" for t in part["teacher_key"]]
    part["teacher_params"] = [count_parameters(models[k]) for k in own]
    part["teacher_epochs"] = [epochs[k] for k in own]
    part["teacher_test_acc"] = [_accuracy(teachers[k].test, data.y_test) for k in own]
    part["teacher_unlabelled_acc"] = [_accuracy(teachers[k].train[~mask], data.y_train[~mask])
                                      for k in own]
    return part


@one_bar("semi_supervised")
def semi_supervised(dataset: str = "digits", fractions: Sequence[float] = (0.05, 0.1, 0.25),
                    seeds: int | Sequence[int] = 3, *, T: float = 4.0, gamma: float = 0.9,
                    multiplier: float = 2.0, teacher_steps: int = 300,
                    student_epochs: int | None = None, subset_seed: int = 0,
                    full_teacher: bool = True, device="auto", root=None, cache=None,
                    use_cache: bool = True, progress="auto") -> pd.DataFrame:
    """Distillation when only a fraction of the training labels is kept.

    For every fraction ``f``: labels are kept for ``f`` of every class
    (:func:`~skdtutor.teachers.labelled_mask` with ``subset_seed``) and the rest of
    the training split is unlabelled. A teacher of the dataset's default spec is
    trained on the labelled part only (:func:`~skdtutor.teachers.subset_teacher`),
    for ``ceil(teacher_steps / batches per epoch)`` epochs, so every fraction gets
    about the same number of optimizer steps. Then one student per seed and variant:

    * ``ce`` / ``labels only``: cross-entropy on the labelled samples only;
    * ``kd``, ``skd`` / ``soft``: the teacher's soft targets on every sample, plus
      the labels where they are kept (``labelled`` mask, ``gamma`` weighting);
    * ``kd``, ``skd`` / ``hard``: the same with the teacher's arg-max
      (:func:`~skdtutor.teachers.hard_targets`) in place of its soft targets;
    * with ``full_teacher``: ``kd`` / ``soft`` from the dataset's default teacher
      (trained on *all* the labels). Column ``teacher_labels`` says which teacher a
      row learnt from (``"labelled part"`` or ``"all"``).

    Returns one row per run (``fraction``, ``n_labelled``, ``targets``, ``method``,
    ``T``, ``seed``, test metrics, ``teacher_test_acc``, ...), kept in the cache.
    """
    setting = setting_for(dataset)
    seeds = seed_list(seeds)
    fractions = [float(f) for f in fractions]
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad or not fractions:  # checked before the first fraction's teacher trains
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1], got {list(fractions)}")
    if use_cache:
        cache_mod.check_writable(cache)
    s_cfg = setting.student_train.replace(
        device=device, **({} if student_epochs is None else {"epochs": student_epochs}))
    key = (dataset.lower(), fractions, seeds, float(T), float(gamma), float(multiplier),
           int(teacher_steps), s_cfg, int(subset_seed), bool(full_teacher), setting)
    path = cache_mod.entry_path("semi", key, cache, device=device)
    stored = cache_mod.load(path) if use_cache else None
    if stored is not None:
        return cache_mod.frame_from_dict(stored)
    data = data_mod.load(dataset, root=root)
    distil = [KD(T=float(T), gamma=float(gamma)),
              SKD(T=float(T), gamma=float(gamma), multiplier=float(multiplier))]
    # the five (six) variants train as one stacked model: each member reads its own teacher
    members = plan([CE()], seeds) + plan(distil, seeds, "soft") + plan(distil, seeds, "hard")
    models, epochs, full = {}, {"all": setting.teacher_train.epochs}, {}
    if full_teacher:
        models["all"], full["all"], _ = default_teacher(data, device=device, cache=cache,
                                                        use_cache=use_cache, progress=progress)
        members += plan(distil[:1], seeds, "all")
    parts = []
    for fraction in fractions:
        mask, models["soft"], t_logits, epochs["soft"] = subset_teacher(
            data, fraction, subset_seed=subset_seed, teacher_steps=teacher_steps, device=device,
            cache=cache, use_cache=use_cache, progress=progress)
        teachers = {"soft": t_logits, "hard": hard_targets(t_logits), **full}
        part = run_students(data, teachers, setting.student, members, s_cfg, labelled=mask,
                            progress=progress).rows
        part = part.rename(columns={"teacher": "teacher_key"})
        part.insert(0, "targets", ["labels only" if pd.isna(k) else ("hard" if k == "hard" else "soft")
                                   for k in part["teacher_key"]])
        part.insert(1, "teacher_labels", ["all" if k == "all" else "labelled part"
                                          for k in part["teacher_key"]])
        part = part.assign(fraction=fraction, n_labelled=int(mask.sum()), teacher=setting.teacher.name)
        part = _describe_teachers(part, mask, data, teachers, models, epochs)
        parts.append(part.drop(columns=["teacher_key", "test_agreement"], errors="ignore"))
    runs = pd.concat(parts, ignore_index=True)
    runs.insert(0, "dataset", data.name)
    runs.loc[runs["method"] == "ce", "T"] = float("nan")
    if use_cache:
        cache_mod.save(path, cache_mod.frame_to_dict(runs))
    return runs


# (teacher trained on, targets, loss) -> the name chapters 5 and 6 give a few-label student
SEMI_VARIANTS = {
    ("labelled part", "labels only", "ce"): "CE, labels only",
    ("labelled part", "soft", "kd"): "KD, soft", ("labelled part", "soft", "skd"): "SKD, soft",
    ("labelled part", "hard", "kd"): "KD, hard", ("labelled part", "hard", "skd"): "SKD, hard",
    ("all", "soft", "kd"): "KD, all-label teacher",
}


def _mnist1d_trim():
    # mnist1d's 23k-parameter student costs ~10x digits' per student: two fractions and half
    # its default epochs keep chapter 5 inside the book's time budget (the regime study:
    # KD and SKD still beat CE at 30 epochs with the full training set).
    return {"mnist1d": {"fractions": (0.1, 0.25), "student_epochs": 30}}


@dataclass(frozen=True)
class SemiSupervisedSettings:
    """Every setting of the few-label study that chapters 5 and 6 share (:data:`SEMI_SUPERVISED`).

    ``settings.run(dataset)`` is ``semi_supervised(dataset, **settings.study_kwargs(dataset))``
    plus a ``variant`` column (:data:`SEMI_VARIANTS`); ``settings.runs()`` concatenates every
    dataset. Models and learning rates come from :func:`~skdtutor.config.setting_for`.
    """

    datasets: tuple = ("digits", "mnist1d")   # the datasets both chapters compare on
    fractions: tuple = (0.05, 0.1, 0.25)      # share of the training labels kept
    seeds: tuple = (0, 1, 2)                  # one student per seed and variant
    T: float = 4.0                            # temperature of KD and SKD
    gamma: float = 0.9                        # weight of the distillation term
    multiplier: float = 2.0                   # SKD's multiplier m
    teacher_steps: int = 300                  # optimizer steps of each few-label teacher
    student_epochs: int | None = None         # None: each dataset's student epochs
    per_dataset: dict = field(default_factory=_mnist1d_trim)  # dataset -> settings it overrides

    def replace(self, **changes) -> "SemiSupervisedSettings":
        """A copy with some settings changed (e.g. ``SEMI_SUPERVISED.replace(T=8.0)``)."""
        return dataclasses.replace(self, **changes)

    def study_kwargs(self, dataset: str) -> dict:
        """The keyword arguments of :func:`semi_supervised` for ``dataset``."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
              if f.name not in ("datasets", "per_dataset")}
        return {**kw, **self.per_dataset.get(dataset, {})}

    def run(self, dataset: str, **options) -> pd.DataFrame:
        """:func:`semi_supervised` on ``dataset`` with these settings, plus ``variant``;
        ``options`` are its non-scientific arguments (``device``, ``cache``, ``use_cache``)."""
        runs = semi_supervised(dataset, **self.study_kwargs(dataset), **options)
        keys = zip(runs["teacher_labels"], runs["targets"], runs["method"])
        return runs.assign(variant=[SEMI_VARIANTS[k] for k in keys])

    def runs(self, **options) -> pd.DataFrame:
        """:meth:`run` on every dataset of :attr:`datasets`, one frame."""
        return pd.concat([self.run(d, **options) for d in self.datasets], ignore_index=True)


SEMI_SUPERVISED = SemiSupervisedSettings()  # the study of chapters 5 and 6

# The results table of chapter 6: ``results_table(**RESULTS_TABLE, return_runs=True)``; its
# command line (chapter 6 and the README) is ``python -m skdtutor results --dataset digits,mnist1d
# --seeds 0,1,2 --temperatures 1,4,16`` (a test parses it and compares with these settings).
RESULTS_TABLE = dict(datasets=("digits", "mnist1d"), seeds=(0, 1, 2), temperatures=(1.0, 4.0, 16.0))
