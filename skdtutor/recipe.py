"""Named training recipes from the literature; ``cifar100-kd`` is mdistiller's CIFAR-100 KD.

``python -m skdtutor recipe cifar100-kd`` (or :func:`run_recipe`) trains a resnet32x4
teacher with cross-entropy, then one resnet8x4 student per method, each with the recipe of
mdistiller's ``configs/cifar100/kd.yaml`` (Zhao et al. 2022, built on the CRD code of Tian
et al. 2020): SGD with momentum 0.9 and weight decay 5e-4, batch 64, learning rate 0.05
divided by 10 at epochs 150, 180 and 210 of 240, random 4-pixel-padded crops and horizontal
flips. Training uses all 50,000 CIFAR-100 training images (the bundle's train and validation
splits together) and the accuracy is measured on the 10,000 test images, as in that code.
The losses keep their own defaults, which are mdistiller's KD settings: ``KD(T=4,
gamma=0.9)`` is ``0.1 CE + 0.9 T^2 KL``. ``epochs=`` shortens a recipe for a quick check; the
milestones keep their place in the schedule (:attr:`RecipeConfig.milestones`).

The literature's numbers to compare with (CIFAR-100 test accuracy, %, best epoch): teacher
resnet32x4 79.42, student resnet8x4 alone 72.50, KD 73.33 (CRD's README, repeated by
mdistiller's); KD with logit standardisation 76.62 (Sun et al., CVPR 2024).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import pandas as pd
import torch

from . import cache as cache_mod
from .config import MAX_EPOCHS, ModelSpec, check_device
from .losses import METHODS, make_loss
from .models import count_parameters
from .recipe_steps import AMP_MODES, autocast_dtype, fit
from .steps import resolve_device

__all__ = ["RecipeConfig", "RECIPES", "LITERATURE", "recipe", "run_recipe"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _count(value, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


@dataclass(frozen=True)
class RecipeConfig:
    """One recipe: the models, the optimizer, the schedule, the augmentation and the device.

    The defaults are mdistiller's CIFAR-100 KD recipe (``configs/cifar100/kd.yaml``).
    """

    dataset: str = "cifar100"                                   # a name of skdtutor.data.load
    teacher: ModelSpec = field(default_factory=lambda: ModelSpec("resnet32x4"))
    student: ModelSpec = field(default_factory=lambda: ModelSpec("resnet8x4"))
    methods: tuple[str, ...] = ("ce", "kd", "skd")              # one student per method
    epochs: int = 240                                           # of the teacher and of each student
    milestone_fractions: tuple[float, ...] = (0.625, 0.75, 0.875)  # lr decays at 150, 180, 210 of 240
    lr: float = 0.05                                            # SGD learning rate before the first decay
    lr_decay: float = 0.1                                       # factor at each milestone, in (0, 1]
    momentum: float = 0.9                                       # SGD momentum, in [0, 1)
    weight_decay: float = 5e-4                                  # SGD (L2) weight decay, >= 0
    batch_size: int = 64                                        # images per SGD step
    padding: int = 4                                            # zero padding of the random crop
    seed: int = 0                                               # weights, batch order and augmentation
    device: str = "auto"                                        # "auto" (CUDA when there), "cpu", "cuda"
    amp: str = "auto"                                           # CUDA only: "auto" (bf16, else fp16), "bf16",
                                                                # "fp16" (with a gradient scaler) or "off"
    channels_last: bool = True                                  # CUDA only: channels-last tensors
    eval_every: int = 1                                         # test accuracy every k epochs (and the last)
    eval_batch_size: int = 1000                                 # images per evaluation batch

    def __post_init__(self):
        _check(_count(self.epochs, 1) and self.epochs <= MAX_EPOCHS,
               f"epochs must be an integer in 1..{MAX_EPOCHS}, got {self.epochs!r}; pass epochs=1 or more")
        for name in ("batch_size", "eval_every", "eval_batch_size"):
            value = getattr(self, name)
            _check(_count(value, 1), f"{name} must be an integer >= 1, got {value!r}")
        _check(_count(self.padding, 0), f"padding must be an integer >= 0, got {self.padding!r}")
        _check(_count(self.seed, 0), f"seed must be an integer >= 0, got {self.seed!r}")
        _check(_real(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr!r}")
        _check(_real(self.lr_decay) and 0 < self.lr_decay <= 1,
               f"lr_decay must lie in (0, 1], got {self.lr_decay!r}")
        _check(_real(self.momentum) and 0 <= self.momentum < 1,
               f"momentum must lie in [0, 1), got {self.momentum!r}")
        _check(_real(self.weight_decay) and self.weight_decay >= 0,
               f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        fr = tuple(self.milestone_fractions)
        _check(all(_real(f) and 0 < f < 1 for f in fr) and list(fr) == sorted(fr),
               f"milestone_fractions must be increasing numbers in (0, 1), got {fr!r}")
        _check(self.amp in AMP_MODES, f"unknown amp mode {self.amp!r}; choose one of {', '.join(AMP_MODES)}")
        _check(isinstance(self.channels_last, bool),
               f"channels_last must be True or False, got {self.channels_last!r}")
        for role in ("teacher", "student"):
            _check(isinstance(getattr(self, role), ModelSpec),
                   f"{role} must be a ModelSpec (e.g. ModelSpec('resnet8x4')), got {getattr(self, role)!r}")
        methods = tuple(self.methods) if not isinstance(self.methods, str) else (self.methods,)
        unknown = [m for m in methods if m not in METHODS]
        _check(bool(methods) and not unknown, f"unknown method(s) {unknown or methods!r}; choose among "
               f"{', '.join(METHODS)}")
        object.__setattr__(self, "methods", methods)
        check_device(self.device)

    @property
    def milestones(self) -> tuple[int, ...]:
        """The 0-based epochs at which the learning rate decays: each fraction of ``epochs``,
        rounded half up (150, 180, 210 of 240; 15, 18, 21 of 24). A milestone at ``epochs``
        never applies (1, 1, 1 of 1: no decay), and milestones that coincide decay together
        (1, 2, 2 of 2: x0.1 after the first epoch; the last epoch never trains at x0.01)."""
        return tuple(math.floor(f * self.epochs + 0.5) for f in self.milestone_fractions)

    def replace(self, **changes) -> "RecipeConfig":
        """A copy with ``changes`` applied (validated again); unknown names are a ValueError."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        _check(not unknown, f"unknown recipe setting(s) {unknown}; RecipeConfig has {names}")
        return dataclasses.replace(self, **changes)


RECIPES = {"cifar100-kd": RecipeConfig()}

# The published CIFAR-100 test accuracies (%) a recipe's run compares with, and where they are.
LITERATURE = {"cifar100-kd": (
    ("teacher resnet32x4", 79.42, "CRD README (Tian et al. 2020)"),
    ("resnet8x4 alone (ce)", 72.50, "CRD README"),
    ("resnet8x4 KD", 73.33, "CRD and mdistiller READMEs"),
    ("resnet8x4 KD + logit standardisation", 76.62, "Sun et al., CVPR 2024, README"),
)}


def recipe(name: str, **overrides) -> RecipeConfig:
    """The recipe ``name`` (a key of :data:`RECIPES`) with ``overrides`` applied; an override of
    None keeps the recipe's value (what the CLI passes for an option left unset)."""
    _check(name in RECIPES, f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return RECIPES[name].replace(**changes) if changes else RECIPES[name]


RESULT_KEYS = ("test_acc", "best_test_acc", "images_per_s", "train_s")  # what a row reports of a run


def _teacher_key(name: str, cfg: RecipeConfig, data, x_train, y_train, device) -> tuple:
    """Every setting that changes the teacher or its reported accuracies, and the autocast
    dtype that "auto" resolves to on this device (bf16 and fp16 GPUs differ)."""
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                if f.name not in ("student", "methods", "device", "eval_batch_size")}
    return (name, data.name, data.seed, len(y_train), cache_mod.tensor_digest(y_train.double()),
            cache_mod.tensor_digest(x_train.flatten(1)[::97, ::7]),  # a sample of the images
            tuple(sorted((k, repr(v)) for k, v in settings.items())), str(autocast_dtype(cfg.amp, device)))


def _train_teacher(name, cfg, data, train, test, device, cache, use_cache, log):
    model = cfg.teacher.build(data, seed=cfg.seed)
    path = cache_mod.entry_path("recipe-teacher", _teacher_key(name, cfg, data, train[0], train[1], device),
                                cache, device=device)

    def fits(stored):  # an entry that does not fit raises: it is recomputed from `model`
        missing = [k for k in RESULT_KEYS if k not in stored]
        if missing:
            raise ValueError(f"the entry lacks {missing}")
        cached = cfg.teacher.build(data, seed=cfg.seed)  # never half-load the model to train
        cached.load_state_dict(stored["model"])
        return {**stored, "model": cached}

    stored = cache_mod.load(path, validate=fits) if use_cache else None
    if stored is not None:
        model = stored["model"]
        result = {k: stored[k] for k in RESULT_KEYS}
        if log is not None:
            log(f"teacher {cfg.teacher.name}: loaded from the cache ({path})")
        return model.to(device), result
    result = fit(model, train, test, make_loss("ce"), cfg, device, log=log,
                 desc=f"teacher {cfg.teacher.name}")
    if use_cache:
        cache_mod.save(path, {"model": {k: v.cpu() for k, v in model.state_dict().items()},
                              **{k: result[k] for k in RESULT_KEYS}})
    return model, result


def run_recipe(name: str = "cifar100-kd", data=None, *, root=None, cache=None, use_cache: bool = True,
               log=print, **overrides) -> pd.DataFrame:
    """Run recipe ``name`` and return one row per trained model.

    Columns: ``role`` (teacher or student), ``model``, ``method``, ``params``, ``epochs``,
    ``test_acc`` (after the last epoch), ``best_test_acc`` (best evaluated epoch, what the
    literature reports), ``images_per_s`` and ``train_s``. ``data`` (a
    :class:`~skdtutor.data.DataBundle`; default ``skdtutor.data.load(config.dataset,
    root=root)``) trains on its train and validation splits together and is scored on its test
    split. The teacher is trained only when a method needs it, and is cached (``cache``,
    ``use_cache``) under every setting that changes it. ``overrides`` are
    :class:`RecipeConfig` fields (``epochs=2``, ``methods=("kd",)``, ``device="cpu"``).

    Every argument is checked (ValueError) before any data is loaded or any model trained.
    """
    cfg = recipe(name, **overrides)
    device = resolve_device(cfg.device)
    losses = {m: make_loss(m) for m in cfg.methods}
    if use_cache:
        cache_mod.check_writable(cache)
    if data is None:
        from .data import load

        data = load(cfg.dataset, root=root)
    _check(len(data.input_shape) == 3,
           f"recipe {name!r} needs image data (C, H, W), got input_shape={data.input_shape}")
    train = (torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val]))
    test = (data.x_test, data.y_test)
    rows, teacher = [], None

    def row(role, spec, method, model, result):
        return {"role": role, "model": spec.name, "method": method, "params": count_parameters(model),
                "epochs": cfg.epochs, **{k: result[k] for k in RESULT_KEYS}}

    if any(loss.needs_teacher for loss in losses.values()):
        teacher, result = _train_teacher(name, cfg, data, train, test, device, cache, use_cache, log)
        rows.append(row("teacher", cfg.teacher, "ce", teacher, result))
    for method, loss in losses.items():
        student = cfg.student.build(data, seed=cfg.seed)
        result = fit(student, train, test, loss, cfg, device, log=log,
                     teacher=teacher if loss.needs_teacher else None,
                     desc=f"student {cfg.student.name} {method}")
        rows.append(row("student", cfg.student, method, student, result))
    return pd.DataFrame(rows)
