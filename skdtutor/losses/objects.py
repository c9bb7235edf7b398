"""The loss objects the trainers take: the public base :class:`DistillLoss` and its registry.

The objects (:class:`CE`, :class:`KD`, :class:`SKD`, :class:`DiceKD`) hold the
hyperparameters, validated once, and call the formulas of
:mod:`skdtutor.losses.functional` without the per-call checks, so a training
step never waits on a host sync. Their ``per_sample`` static methods broadcast
over leading dimensions, which is what lets :mod:`skdtutor.train` train a whole
sweep of students as one stacked model. A subclass of :class:`DistillLoss` with
a ``name`` is registered in :data:`METHODS`, which :func:`make_loss` reads.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from .checks import check_gamma, check_multiplier, check_temperature, is_real
from .functional import _sphere, ce_per_sample, dice_per_sample, kd_per_sample, skd_per_sample
from .fused import soft_cross_entropy, teacher_terms

__all__ = ["DistillLoss", "CE", "KD", "SKD", "DiceKD", "make_loss", "METHODS"]


METHODS: dict[str, type] = {}  # method name -> DistillLoss subclass, filled by subclassing


@dataclass(frozen=True)
class DistillLoss:
    """Public base of the loss objects the trainers take; subclass it to add a method.

    A subclass is a frozen dataclass whose fields are its hyperparameters
    (validated once in ``__post_init__``) with:

    * ``name`` (class variable): the method name; a subclass with a name is
      registered in :data:`METHODS`, so :func:`make_loss` and the CLI know it;
    * ``per_sample(student_logits, teacher_logits, labels, label_mask, **hparams)``
      (static method): the per-sample loss, broadcasting over leading dimensions;
    * ``stackable`` (class variable): the numeric fields that may differ between
      the students of one stacked sweep (passed as ``(k, 1, 1)`` tensors);
    * ``needs_teacher`` (class variable): False for a loss that ignores the teacher;
    * optionally ``teacher_terms(teacher_logits, **hparams)`` and
      ``per_sample_terms(student_logits, terms, labels, label_mask, **hparams)`` (static
      methods): the same loss split into what depends on the teacher alone, which the stacked
      sweep computes once per epoch (every tensor in it has the samples on axis 1), and the
      rest. By default the terms are the logits and ``per_sample`` is called. They are used
      only when the class that defines them also defines ``per_sample``
      (:meth:`terms_functions`), so a subclass that overrides ``per_sample`` alone stays right.

    ``loss(student_logits, teacher_logits, labels)`` is the mean over the batch.
    Adding a method touches this file (``skdtutor/losses/objects.py``) plus its colour in :data:`skdtutor.viz.METHOD_COLORS`.
    """

    name: ClassVar[str] = ""
    stackable: ClassVar[tuple[str, ...]] = ()  # numeric fields that may differ inside one stacked sweep
    needs_teacher: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name:
            known = METHODS.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise ValueError(f"method name {name!r} is taken by {known.__qualname__}")
            METHODS[name] = cls

    @classmethod
    def hparam_names(cls) -> tuple[str, ...]:
        """The names of the hyperparameters (the dataclass fields)."""
        return tuple(f.name for f in fields(cls))

    def hparams(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def static_key(self) -> tuple:
        """Fields that must be equal for two losses to be trained in one stacked model."""
        return (type(self),) + tuple((k, v) for k, v in self.hparams().items()
                                     if k not in self.stackable)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, **hparams):
        raise NotImplementedError("a DistillLoss subclass defines per_sample")

    @staticmethod
    def teacher_terms(teacher_logits, **hparams):
        return teacher_logits

    @classmethod
    def per_sample_terms(cls, student_logits, terms, labels=None, label_mask=None, **hparams):
        return cls.per_sample(student_logits, terms, labels, label_mask, **hparams)

    @classmethod
    def terms_functions(cls):
        """``(teacher_terms, per_sample_terms)`` for this class: its own pair when the class
        defining them also defines ``per_sample``, else the defaults built on ``per_sample``."""
        def owner(attr):
            return next(k for k in cls.__mro__ if attr in k.__dict__)

        if owner("teacher_terms") is owner("per_sample") is owner("per_sample_terms"):
            return cls.teacher_terms, cls.per_sample_terms
        return DistillLoss.teacher_terms, cls.per_sample  # the terms are then the logits

    def __call__(self, student_logits, teacher_logits=None, labels=None, label_mask=None):
        return self.per_sample(student_logits, teacher_logits, labels, label_mask, **self.hparams()).mean()


@dataclass(frozen=True)
class CE(DistillLoss):
    """Plain cross-entropy on hard labels, :math:`\\mathrm{CE}(s, y)`; the teacher is ignored."""

    name: ClassVar[str] = "ce"
    needs_teacher: ClassVar[bool] = False

    @staticmethod
    def per_sample(student_logits, teacher_logits=None, labels=None, label_mask=None):
        if labels is None:
            raise ValueError("the CE loss needs labels; use KD/SKD with labels=None for unlabelled data")
        return ce_per_sample(student_logits, labels, label_mask)

    @staticmethod
    def teacher_terms(teacher_logits):
        return None

    @staticmethod
    def per_sample_terms(student_logits, terms, labels=None, label_mask=None):
        if labels is None:
            raise ValueError("the CE loss needs labels; use KD/SKD with labels=None for unlabelled data")
        return soft_cross_entropy(None, student_logits, None, None, labels, label_mask, 1.0, 0.0)


@dataclass(frozen=True)
class KD(DistillLoss):
    """:func:`kd_loss` for the trainers."""

    T: float = 4.0
    gamma: float = 0.9
    name: ClassVar[str] = "kd"
    stackable: ClassVar[tuple[str, ...]] = ("T", "gamma")

    def __post_init__(self):
        check_temperature(self.T)
        check_gamma(self.gamma)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma):
        return kd_per_sample(student_logits, teacher_logits, labels, label_mask, T, gamma)

    @staticmethod
    def teacher_terms(teacher_logits, *, T, gamma):
        return teacher_terms(teacher_logits, T)

    @staticmethod
    def per_sample_terms(student_logits, terms, labels=None, label_mask=None, *, T, gamma):
        return soft_cross_entropy(student_logits, student_logits, *terms, labels, label_mask, T, gamma)


@dataclass(frozen=True)
class SKD(DistillLoss):
    """:func:`skd_loss` for the trainers."""

    T: float = 4.0
    gamma: float = 0.9
    multiplier: float = 2.0
    ce_on_raw: bool = False
    name: ClassVar[str] = "skd"
    stackable: ClassVar[tuple[str, ...]] = ("T", "gamma", "multiplier")

    def __post_init__(self):
        check_temperature(self.T)
        check_gamma(self.gamma)
        check_multiplier(self.multiplier)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma,
                   multiplier, ce_on_raw=False, eps=1e-7):
        return skd_per_sample(student_logits, teacher_logits, labels, label_mask, T, gamma,
                               multiplier, ce_on_raw=ce_on_raw, eps=eps)

    @staticmethod
    def teacher_terms(teacher_logits, *, T, gamma, multiplier, ce_on_raw=False, eps=1e-7):
        return teacher_terms(_sphere(teacher_logits, multiplier, eps), T)

    @staticmethod
    def per_sample_terms(student_logits, terms, labels=None, label_mask=None, *, T, gamma,
                         multiplier, ce_on_raw=False, eps=1e-7):
        s = _sphere(student_logits, multiplier, eps)
        return soft_cross_entropy(s, student_logits if ce_on_raw else s, *terms, labels, label_mask,
                                  T, gamma)


@dataclass(frozen=True)
class DiceKD(DistillLoss):
    """:func:`dice_loss` for the trainers."""

    T: float = 4.0
    gamma: float = 0.9
    name: ClassVar[str] = "dice"
    stackable: ClassVar[tuple[str, ...]] = ("T", "gamma")

    def __post_init__(self):
        check_temperature(self.T)
        check_gamma(self.gamma)

    @staticmethod
    def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma,
                   eps=1e-7):
        return dice_per_sample(student_logits, teacher_logits, labels, label_mask, T, gamma,
                                eps=eps)


def make_loss(method: str, **hparams) -> DistillLoss:
    """Build a registered loss by method name (see :data:`METHODS`) with its own hyperparameters.

    ``make_loss("kd", T=2, gamma=0.5)``; float fields are converted to float. A
    hyperparameter the method does not have is a ValueError naming the ones it has.
    """
    key = method.lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[key]
    unknown = sorted(set(hparams) - set(cls.hparam_names()))
    if unknown:
        raise ValueError(f"the {key!r} loss has no hyperparameter(s) {unknown}; "
                         f"its hyperparameters are {list(cls.hparam_names())}")
    floats = {f.name for f in fields(cls) if f.type in ("float", float)}
    return cls(**{k: float(v) if k in floats and is_real(v) else v for k, v in hparams.items()})
