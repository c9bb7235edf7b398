"""The SKD study of chapters 3 and 4: :func:`skd_study` and its shared settings :data:`SKD_STUDY`.

Chapters 3 and 4 read the same SKD students because they run the same settings
object, :data:`SKD_STUDY` (a frozen :class:`SKDStudySettings`: datasets, seeds,
temperatures, multipliers, teacher widths, ...), not because constants typed in
two notebooks happen to match::

    from skdtutor.skd_study import SKD_STUDY
    studies = {name: SKD_STUDY.run(name) for name in SKD_STUDY.datasets}

Every student of the study trains in one :func:`skdtutor.runs.run_students` call
and the result stays in the cache, so the second chapter gets the same students
back without training.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from . import cache as cache_mod
from . import data as data_mod
from .config import setting_for
from .losses import CE, KD, SKD, DiceKD
from .metrics import accuracy
from .models import count_parameters
from .progress import one_bar
from .runs import Member, run_students
from .stats import seed_values, select
from .studies import seed_list
from .teachers import get_teacher

__all__ = ["SKDStudy", "SKDStudySettings", "SKD_STUDY", "skd_study"]


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
                             "test_acc": accuracy(logits.test, data.y_test),
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
