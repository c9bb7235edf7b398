"""skdtutor: knowledge distillation, Spherical KD and Dice temperature search.

The package behind the skdtutor book. Modules:

* :mod:`skdtutor.losses` — ``kd_loss``, ``skd_loss``, ``dice_loss``, ``sphere``, ``soft_dice``, ``dice3``
* :mod:`skdtutor.temperature` — ``dice_temperature_search``
* :mod:`skdtutor.data` — ``load("digits" | "mnist1d" | "mnist" | ...)``
* :mod:`skdtutor.models` — ``MLP``, ``CNN``, ``resnet``, ``build_model``
* :mod:`skdtutor.train` — ``train_teacher``, ``distill``, ``distill_sweep``
* :mod:`skdtutor.metrics` — accuracy, NLL, ECE, confidence
* :mod:`skdtutor.experiments` — the runner behind the book's tables and the CLI
"""
from . import data, experiments, losses, metrics, models, temperature, train, viz
from .losses import CE, KD, SKD, DiceKD, dice3, dice_loss, kd_loss, skd_loss, soft_dice, soften, sphere
from .temperature import dice_temperature_search
from .train import distill, distill_sweep, train_teacher

__version__ = "0.1.0"

__all__ = ["data", "experiments", "losses", "metrics", "models", "temperature", "train", "viz",
           "CE", "KD", "SKD", "DiceKD", "dice3", "dice_loss", "kd_loss", "skd_loss", "soft_dice",
           "soften", "sphere", "dice_temperature_search", "distill", "distill_sweep", "train_teacher"]
