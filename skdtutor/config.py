"""Run configuration: how to train (:class:`TrainConfig`), what to build (:class:`ModelSpec`),
and the per-dataset defaults that compose them (:class:`Setting`, :data:`SETTINGS`).

Every default of the package is written here once. Trainers and studies take a
:class:`TrainConfig` (or keyword overrides that go through it, so they are
validated the same way); an explicit 0 or a negative value is a ``ValueError``
naming the field, never a silent default::

    from skdtutor.config import TrainConfig, setting_for
    cfg = TrainConfig(epochs=40, lr=3e-3, batch_size=64)
    student = setting_for("digits").student.build(data, seed=0)
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import torch

__all__ = ["TrainConfig", "train_config", "ModelSpec", "Setting", "SETTINGS", "setting_for",
           "MAX_EPOCHS", "check_device"]

# An upper bound on epochs: the book's runs use at most a few hundred; a larger
# count is almost always a typo (an extra zero), and would run for days.
MAX_EPOCHS = 10_000


def _positive_int(name: str, value, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}; {fix}")


def check_device(device) -> None:
    """A ValueError unless ``device`` is ``"auto"``, a torch device string (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ...) or a ``torch.device``. Whether a GPU is there is
    checked when the device is used (:func:`skdtutor.steps.resolve_device`)."""
    if device is None or device == "auto" or isinstance(device, torch.device):
        return
    try:
        ok = isinstance(device, str) and torch.device(device) is not None
    except (RuntimeError, ValueError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one model: Adam with a constant learning rate, batched by index."""

    epochs: int = 30            # passes over the training split, 1 .. MAX_EPOCHS
    lr: float = 1e-3            # Adam learning rate, > 0
    weight_decay: float = 0.0   # Adam (L2) weight decay, >= 0
    batch_size: int = 128       # samples per optimizer step
    seed: int = 0               # seed of the batch order (and of the weights where a model is built)
    device: str = "auto"        # "auto" (CUDA when available), "cpu" or "cuda"
    eval_every: int = 1         # evaluate every k epochs (the last one always)
    threads: int | None = None  # torch intra-op threads during the run; None leaves the setting alone

    def __post_init__(self):
        _positive_int("epochs", self.epochs, "pass epochs=1 or more")
        if self.epochs > MAX_EPOCHS:
            raise ValueError(f"epochs={self.epochs} is above the limit of {MAX_EPOCHS} "
                             "(skdtutor.config.MAX_EPOCHS); pass fewer epochs")
        _positive_int("batch_size", self.batch_size, "pass batch_size=1 or more")
        _positive_int("eval_every", self.eval_every, "pass eval_every=epochs to evaluate only at the end")
        if self.threads is not None:
            _positive_int("threads", self.threads, "pass threads=None to leave torch's setting alone")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name, low in (("lr", None), ("weight_decay", 0.0)):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or (value <= 0 if low is None else value < low):
                rule = "a finite number > 0" if low is None else "a finite number >= 0"
                raise ValueError(f"{name} must be {rule}, got {value!r}")
        check_device(self.device)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again); unknown names are a ValueError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; TrainConfig has "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)


def train_config(config: TrainConfig | None = None, **overrides) -> TrainConfig:
    """``config`` (default: ``TrainConfig()``) with keyword ``overrides`` applied and validated."""
    if config is not None and not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {config!r}")
    config = TrainConfig() if config is None else config
    return config.replace(**overrides) if overrides else config


@dataclass(frozen=True)
class ModelSpec:
    """What to build: a model family of :mod:`skdtutor.models` and its capacity knobs."""

    name: str = "mlp"          # "mlp", "cnn", a torchvision ResNet or a CIFAR ResNet (models.MODEL_NAMES)
    width: int | None = None   # hidden units (mlp) or channels (cnn); None: the family's default
    depth: int | None = None   # hidden layers, mlp only; None: the family's default

    def __post_init__(self):
        from .models import MODEL_NAMES

        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; choose one of {', '.join(MODEL_NAMES)}")
        if self.width is not None:
            _positive_int("width", self.width, "pass width=None for the family's default")
        if self.depth is not None:
            if self.name != "mlp":
                raise ValueError(f"depth applies to 'mlp' only; pass depth=None for {self.name!r}")
            if isinstance(self.depth, bool) or not isinstance(self.depth, numbers.Integral) or self.depth < 0:
                raise ValueError(f"depth must be an integer >= 0, got {self.depth!r}")

    def build(self, data, seed: int | None = None):
        """:func:`skdtutor.models.build_model` for ``data``; with ``seed`` the weights are fixed by it."""
        from .models import build_model

        return build_model(self.name, data, width=self.width, depth=self.depth, seed=seed)

    def replace(self, **changes) -> "ModelSpec":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Setting:
    """The defaults of one dataset: a teacher and a student, each with how it is trained."""

    teacher: ModelSpec = field(default_factory=lambda: ModelSpec("cnn", width=32))
    teacher_train: TrainConfig = field(default_factory=TrainConfig)
    student: ModelSpec = field(default_factory=lambda: ModelSpec("mlp", width=32, depth=1))
    student_train: TrainConfig = field(default_factory=TrainConfig)


def _setting(teacher: ModelSpec, teacher_epochs: int, student: ModelSpec, student_epochs: int,
             **train) -> Setting:
    """Teacher and student share the optimizer settings ``train`` and differ in epochs."""
    return Setting(teacher, TrainConfig(epochs=teacher_epochs, **train),
                   student, TrainConfig(epochs=student_epochs, **train))


# CPU-friendly for the embedded datasets; the others assume a GPU.
SETTINGS = {
    "digits": _setting(ModelSpec("cnn", 32), 30, ModelSpec("mlp", 16, 1), 40, batch_size=64),
    # The students sit where a teacher helps (the regime map of chapter 2): an MLP of
    # 23k parameters on mnist1d; the 3k one (64x1) is the map's "too small" case.
    "mnist1d": _setting(ModelSpec("cnn", 32), 40, ModelSpec("mlp", 128, 2), 60, lr=3e-3),
    # mnist-5k's teacher: width 16 for 15 epochs scores as a width-32 one does after 10 (96.3 %
    # test) in 40 % of its CPU time.
    "mnist-5k": _setting(ModelSpec("cnn", 16), 15, ModelSpec("mlp", 32, 1), 40),
    "mnist": _setting(ModelSpec("cnn", 32), 5, ModelSpec("mlp", 64, 1), 5, batch_size=256),
    "fashion-mnist": _setting(ModelSpec("cnn", 32), 10, ModelSpec("mlp", 64, 1), 10, batch_size=256),
    "cifar10": _setting(ModelSpec("resnet18"), 30, ModelSpec("cnn", 16), 30, batch_size=256),
    "cifar100": _setting(ModelSpec("resnet34"), 60, ModelSpec("resnet18"), 60, batch_size=256),
}


def setting_for(dataset: str) -> Setting:
    """The default :class:`Setting` of a dataset."""
    key = dataset.lower()
    if key not in SETTINGS:
        raise ValueError(f"no default setting for dataset {dataset!r}; choose one of {sorted(SETTINGS)}")
    return SETTINGS[key]
