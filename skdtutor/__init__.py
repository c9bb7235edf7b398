"""skdtutor: knowledge distillation, Spherical KD and Dice temperature search.

The package behind the skdtutor book. Modules, bottom to top (imports point downwards):

* :mod:`skdtutor.losses` — ``kd_loss``, ``skd_loss``, ``dice_loss``, ``sphere``, ``soft_dice``,
  ``dice3`` and the loss objects (``DistillLoss``, ``CE``, ``KD``, ``SKD``, ``DiceKD``)
* :mod:`skdtutor.temperature` — ``dice_temperature_search``
* :mod:`skdtutor.bundle` → :mod:`skdtutor.datasets` → :mod:`skdtutor.data` (``load``, ``prepare``),
  :mod:`skdtutor.models`, :mod:`skdtutor.metrics`, :mod:`skdtutor.progress`
* :mod:`skdtutor.config` — ``TrainConfig``, ``ModelSpec``, ``Setting``, ``setting_for``
* :mod:`skdtutor.steps`, :mod:`skdtutor.train` — ``train_teacher``, ``distill``
* :mod:`skdtutor.stacking`, :mod:`skdtutor.stacked_adam`, :mod:`skdtutor.sweep_loss`,
  :mod:`skdtutor.sweep` — ``distill_sweep`` (many students as one model);
  :mod:`skdtutor.parallel` — ``stacked_sweep`` (its members split over the CPU's cores);
  :mod:`skdtutor.distributed` — torchrun (process group, shards, DDP)
* :mod:`skdtutor.cache`, :mod:`skdtutor.teachers` — ``get_teacher``, ``teacher_snapshots``, ...
* :mod:`skdtutor.runs` — ``run_students`` (one runner for every plan of students)
* :mod:`skdtutor.stats` — ``seed_summary``, ``format_table``, the noise rule
* :mod:`skdtutor.studies` (the CLI), :mod:`skdtutor.skd_study`, :mod:`skdtutor.semi_study` (chapters)
* :mod:`skdtutor.regime` — ``regime_map`` (where a teacher helps); :mod:`skdtutor.claims` — the claim table
* :mod:`skdtutor.style`, :mod:`skdtutor.viz`, :mod:`skdtutor.figures`, :mod:`skdtutor.teacher_figures`
  — the figure style and the book's recurring figures; :mod:`skdtutor.glue` — numbers into
  the text; :mod:`skdtutor.explorer` — the kernel-free temperature slider; :mod:`skdtutor.live` —
  its ipywidgets twin for live kernels;
  :mod:`skdtutor.export` — reader notebooks with the glued values written into the prose
* :mod:`skdtutor.resnet_cifar` — the CIFAR ResNets of the KD literature (resnet8x4, resnet32x4, ...);
  :mod:`skdtutor.recipe`, :mod:`skdtutor.recipe_steps` — the literature's ``cifar100-kd`` recipe
* :mod:`skdtutor.cli_spec` (names the CLI shows without importing torch), :mod:`skdtutor.cli_args`,
  :mod:`skdtutor.cli_recipe`, ``python -m skdtutor``

Submodules and the names below are imported on first use, so ``import skdtutor.losses``
stays light (no pandas, no matplotlib).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("losses", "temperature", "data", "models", "metrics", "config", "steps", "train",
               "stacking", "sweep", "cache", "teachers", "runs", "stats", "studies",
               "skd_study", "semi_study", "regime", "claims", "style", "viz", "figures",
               "teacher_figures", "explorer", "explorer_panel", "live", "progress", "bundle",
               "datasets", "export", "export_glue", "export_markdown", "cli_spec", "cli_args",
               "cli_recipe", "parallel", "distributed", "resnet_cifar", "recipe", "recipe_steps")

_NAMES = {  # public name -> module that defines it
    **{n: "losses" for n in ("DistillLoss", "CE", "KD", "SKD", "DiceKD", "make_loss", "dice3",
                             "dice_loss", "kd_loss", "skd_loss", "soft_dice", "soften", "sphere")},
    "dice_temperature_search": "temperature",
    **{n: "config" for n in ("TrainConfig", "ModelSpec", "Setting", "setting_for")},
    **{n: "train" for n in ("train_teacher", "distill", "History", "TeacherLogits")},
    **{n: "sweep" for n in ("distill_sweep", "SweepMember")},
    **{n: "teachers" for n in ("get_teacher", "default_teacher")},
    **{n: "runs" for n in ("run_students", "Member")},
    "compare": "studies",
}

__all__ = [*_SUBMODULES, *_NAMES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'skdtutor' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
