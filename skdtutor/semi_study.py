"""Distillation with few labels, the study of chapters 5 and 6: :func:`semi_supervised`
and its shared settings :data:`SEMI_SUPERVISED` (``SEMI_SUPERVISED.runs()``).

Every student of a fraction trains in one :func:`skdtutor.runs.run_students` call
(the variants of :data:`SEMI_VARIANTS` as one stacked model) and the result stays
in the cache, so the second chapter gets the same students back without training.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from . import cache as cache_mod
from . import data as data_mod
from .config import setting_for
from .losses import CE, KD, SKD
from .metrics import accuracy
from .models import count_parameters
from .progress import one_bar
from .runs import plan, run_students
from .studies import seed_list
from .teachers import default_teacher, hard_targets, subset_teacher

__all__ = ["semi_supervised", "SemiSupervisedSettings", "SEMI_SUPERVISED", "SEMI_VARIANTS"]


def _describe_teachers(part, mask, data, teachers, models, epochs):
    """Per row: the size, epochs and accuracies of the teacher the row learnt from."""
    own = ["all" if t == "all" else "soft" for t in part["teacher_key"]]
    part["teacher_params"] = [count_parameters(models[k]) for k in own]
    part["teacher_epochs"] = [epochs[k] for k in own]
    part["teacher_test_acc"] = [accuracy(teachers[k].test, data.y_test) for k in own]
    part["teacher_unlabelled_acc"] = [accuracy(teachers[k].train[~mask], data.y_train[~mask])
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
