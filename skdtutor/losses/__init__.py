"""Distillation losses: pure functions on logits, plus thin objects for the trainers.

* :mod:`~skdtutor.losses.functional`: ``soften``, ``kd_loss``, ``sphere``, ``skd_loss``,
  ``soft_dice``, ``dice_loss``, ``dice3`` (formula, reduction and paper in each docstring);
* :mod:`~skdtutor.losses.checks`: the input checks and the ranges float32 logits survive,
  :data:`TEMPERATURE_RANGE` and :data:`MULTIPLIER_RANGE`;
* :mod:`~skdtutor.losses.objects`: the public base :class:`DistillLoss` (subclass it to add a
  method), ``CE``, ``KD``, ``SKD``, ``DiceKD``, the registry :data:`METHODS` and ``make_loss``.

Every name is importable from ``skdtutor.losses``.
"""
from __future__ import annotations

from .checks import (MULTIPLIER_RANGE, TEMPERATURE_RANGE, check_gamma, check_labels, check_multiplier,
                     check_pair, check_temperature)
from .functional import dice3, dice_loss, kd_loss, skd_loss, soft_dice, soften, sphere
from .objects import CE, KD, METHODS, SKD, DiceKD, DistillLoss, make_loss

__all__ = [
    "soften", "kd_loss", "sphere", "skd_loss", "soft_dice", "dice_loss", "dice3",
    "DistillLoss", "CE", "KD", "SKD", "DiceKD", "make_loss", "METHODS",
    "check_pair", "check_labels", "check_temperature", "check_gamma", "check_multiplier",
    "TEMPERATURE_RANGE", "MULTIPLIER_RANGE",
]
