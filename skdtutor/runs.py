"""The one student runner: a plan of members (loss, seed, teacher) in, one row per member out.

:func:`run_students` trains every member of a plan, stacked into one model when
the architecture allows it (:func:`skdtutor.sweep.distill_sweep`; students of
different teachers included: each member reads its own teacher's logits), one
after another with :func:`skdtutor.train.distill` otherwise; both give the same
numbers. With ``use_cache`` every member's row and logits are one cache entry
(:mod:`skdtutor.cache`), keyed by the data, its own teacher's logits, its loss,
seed and every training setting; a plan trains only the members the cache lacks, so
chapters whose plans overlap share those students::

    teachers = {"cnn": logits}
    result = run_students(data, teachers, ModelSpec("mlp", 16, 1),
                          plan([CE(), KD(T=4.0)], seeds=[0, 1, 2], teacher="cnn"), config)
    result.rows  # one row per member: method, hyperparameters, seed, test metrics, ...
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import pandas as pd
import torch

from . import cache as cache_mod
from . import distributed
from .config import ModelSpec, TrainConfig, train_config
from .losses import DistillLoss
from .models import count_parameters
from .progress import one_bar
from .steps import DivergedError, History, nan_metrics, predict, resolve_teacher
from .parallel import stacked_sweep
from .sweep import SweepMember, stackable
from .train import distill

__all__ = ["Member", "plan", "StudentRuns", "run_students"]


@dataclass(frozen=True)
class Member:
    """One student of a plan: its loss, its seed, and the key of its teacher (None: none)."""

    loss: DistillLoss
    seed: int = 0
    teacher: Hashable = None


def plan(losses: Sequence[DistillLoss], seeds: Iterable[int], teacher: Hashable = None) -> list[Member]:
    """One member per (loss, seed), loss-major, all learning from ``teacher``."""
    seeds = [int(s) for s in seeds]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds {repeated} appear more than once; each seed is one independent run, "
                         "so pass distinct seeds")
    return [Member(loss, seed, teacher) for loss in losses for seed in seeds]


@dataclass
class StudentRuns:
    """What :func:`run_students` returns."""

    rows: pd.DataFrame   # one row per member, in plan order
    logits: list | None  # per row {"val": logits, "test": logits} (keep_logits or a cache hit)
    models: list | None  # the trained students, in plan order (None when any came from the cache)


def _check(teachers: Mapping, members: Sequence[Member]) -> None:
    if not members:
        raise ValueError("the plan is empty; pass at least one Member(loss, seed, teacher)")
    for m in members:
        if not isinstance(m, Member) or not isinstance(m.loss, DistillLoss):
            raise ValueError(f"plan items must be Member(loss, seed, teacher), got {m!r}")
        if m.teacher is None and m.loss.needs_teacher:
            raise ValueError(f"the {m.loss.name!r} loss needs a teacher; its teacher key is None")
        if m.teacher is not None and m.teacher not in teachers:
            raise ValueError(f"teacher key {m.teacher!r} is not among the teachers {list(teachers)!r}")


def _member_key(data, teachers, spec, cfg, member, labelled) -> tuple:
    """One member's cache key: what its numbers depend on, and nothing else. The teacher
    enters by its logits' digest, not by its key in the plan, and the other members not
    at all (stacked or alone, a member trains to the same numbers), so a member that
    another chapter's plan already trained is read back instead of trained again."""
    teacher = None if member.teacher is None else teachers[member.teacher]
    return (data.name, data.seed, len(data.y_train), len(data.y_val), len(data.y_test), spec,
            cfg.epochs, float(cfg.lr), cfg.batch_size, float(cfg.weight_decay),
            member.loss.name, member.loss.hparams(), member.seed,
            cache_mod.tensor_digest(data.x_train, data.y_train.double()),
            None if teacher is None else cache_mod.tensor_digest(teacher.train, teacher.val, teacher.test),
            None if labelled is None else cache_mod.tensor_digest(labelled.double()))


def _stored_fits(stored, data) -> dict:
    """A cached member entry (``{"row": dict, "logits": {"val", "test"}}``), checked
    against the data; raises when it does not fit."""
    row, item = stored["row"], stored["logits"]
    if not isinstance(row, dict) or "test_acc" not in row:
        raise ValueError("the entry holds no result row")
    for split in ("val", "test"):
        n = len(getattr(data, f"y_{split}"))
        t = item[split]
        if not isinstance(t, torch.Tensor) or t.shape != (n, data.num_classes):
            raise ValueError(f"{split} logits of shape {tuple(getattr(t, 'shape', ()))}, "
                             f"expected ({n}, {data.num_classes})")
    return stored


def _train(data, teachers, spec, cfg, members, labelled, batched, progress):
    """The members' histories, stacked when possible (the same numbers either way). Under
    torchrun the members train one at a time, each data-parallel over the ranks
    (:mod:`skdtutor.distributed`): the stacked sweep runs in one process only."""
    keys = list(teachers)
    if distributed.world_size() > 1:
        if batched:
            raise ValueError("the stacked sweep (batched=True) runs in one process only; under "
                             "torchrun pass batched=None or False (students train one at a time, "
                             "data-parallel)")
        batched = False
    if batched if batched is not None else stackable(lambda: spec.build(data)):
        sweep = [SweepMember(m.loss, m.seed, 0 if m.teacher is None else keys.index(m.teacher))
                 for m in members]
        return stacked_sweep(spec, [teachers[k] for k in keys] or None, data, sweep, cfg,
                             progress=progress, labelled=labelled)  # split over the CPU cores when it pays
    histories = []
    for m in members:
        model = spec.build(data, seed=m.seed)
        teacher = None if m.teacher is None else teachers[m.teacher]
        try:
            histories.append(distill(model, teacher, data, m.loss, config=cfg.replace(seed=m.seed),
                                     progress=progress, labelled=labelled))
        except DivergedError as exc:  # marked as the stacked sweep marks it; the others train on
            warnings.warn(f"{exc}; the member is marked diverged, the others train on",
                          RuntimeWarning, stacklevel=3)
            epoch = exc.row["epoch"]
            row = {**exc.row, **nan_metrics(data, teacher), "diverged": True, "diverged_epoch": epoch}
            histories.append(History([row], exc.record, model.eval(), diverged_epoch=epoch))
    return histories


@one_bar("students")
def run_students(data, teachers: Mapping | None, student: ModelSpec, members: Sequence[Member],
                 config: TrainConfig | None = None, *, labelled=None, batched: bool | None = None,
                 keep_logits: bool = False, cache=None, use_cache: bool = False,
                 progress="auto", **overrides) -> StudentRuns:
    """Distil one ``student`` per member of the plan; one row per member with its final metrics.

    Parameters
    ----------
    teachers : mapping ``key -> TeacherLogits`` (or a teacher module) that the
        members' ``teacher`` keys index; None or ``{}`` when no member has a teacher.
    student : what to build (:class:`~skdtutor.config.ModelSpec`).
    members : the plan (see :func:`plan`).
    config : how to train (``**overrides`` change its fields); only the final
        epoch is evaluated.
    labelled : boolean mask over the training split; samples where it is False
        are unlabelled and get only the distillation term.
    batched : stack the students (default: when the architecture allows it).
    keep_logits : also return every student's validation and test logits.
    cache, use_cache : keep (and reuse) each member's row and logits in the cache; only
        the members it does not hold are trained (together, as one plan).

    Returns
    -------
    :class:`StudentRuns`; its rows hold the loss's hyperparameters, ``seed``,
    ``teacher`` (the key), ``val_acc``, ``test_acc`` and the other test metrics
    (``test_agreement`` against the student's own teacher, NaN without one),
    ``student`` and ``student_params``, and ``diverged``: True for a member whose
    loss or weights became non-finite (its metrics are NaN, never a trained
    accuracy; ``diverged_epoch`` says when; the others are unaffected).
    """
    members = list(members)
    cfg = train_config(config, **overrides)
    cfg = cfg.replace(eval_every=cfg.epochs)  # only the final numbers are reported
    teachers = {} if teachers is None else {k: resolve_teacher(t, data, cfg.device)[0]
                                            for k, t in dict(teachers).items()}
    _check(teachers, members)
    paths, stored = [None] * len(members), [None] * len(members)
    if use_cache:
        cache_mod.check_writable(cache)
        paths = [cache_mod.entry_path("student", _member_key(data, teachers, student, cfg, m, labelled),
                                      cache, device=cfg.device) for m in members]
        stored = [cache_mod.load(p, validate=lambda s: _stored_fits(s, data)) for p in paths]
    todo = [i for i, s in enumerate(stored) if s is None]
    models = None
    if todo:  # train only the members the cache does not hold, as one plan
        histories = _train(data, teachers, student, cfg, [members[i] for i in todo], labelled,
                           batched, progress)
        n_params = count_parameters(histories[0].model)
        for i, h in zip(todo, histories):
            row = h.final
            row["diverged"] = h.diverged_epoch is not None  # True: no result (NaN metrics)
            row.update(student=student.name, student_params=n_params)
            logits = None
            if keep_logits or use_cache:
                logits = {"val": predict(h.model, data.x_val, device=cfg.device),
                          "test": predict(h.model, data.x_test, device=cfg.device)}
            stored[i] = {"row": row, "logits": logits}
            if use_cache:
                cache_mod.save(paths[i], stored[i])
        if len(todo) == len(members):
            models = [h.model for h in histories]
    rows = []
    for m, s in zip(members, stored):
        row = {k: v for k, v in s["row"].items() if k not in ("student", "student_params")}
        row.update(teacher=m.teacher, student=s["row"]["student"], student_params=s["row"]["student_params"])
        if m.teacher is None and teachers:
            row["test_agreement"] = float("nan")
        rows.append(row)
    rows = pd.DataFrame(rows)
    logits = [s["logits"] for s in stored] if keep_logits else None
    return StudentRuns(rows, logits, models)
