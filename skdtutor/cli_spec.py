"""The command line's light data: method, dataset and limit names, without importing torch.

``python -m skdtutor --help`` builds its parser from these constants only, so it answers
in a fraction of a second; the modules that define them (:mod:`skdtutor.losses`,
:mod:`skdtutor.data`, :mod:`skdtutor.config`, :mod:`skdtutor.studies`) import torch.
``tests/test_cli.py`` checks that every constant here equals its source, so they cannot drift.
"""
from __future__ import annotations

__all__ = ["METHOD_NAMES", "KD_AT_DICE", "CLI_METHODS", "DATASET_NAMES", "OFFLINE_DATASET_NAMES",
           "MAX_EPOCHS", "MULTIPLIER_RANGE", "RECIPE_NAMES", "AMP_MODES"]

METHOD_NAMES = ("ce", "kd", "skd", "dice")      # == tuple(skdtutor.losses.METHODS)
KD_AT_DICE = "kd@dice"                          # == skdtutor.studies.KD_AT_DICE
CLI_METHODS = (*METHOD_NAMES, KD_AT_DICE)
OFFLINE_DATASET_NAMES = ("digits", "mnist1d", "mnist-5k")  # == skdtutor.data.OFFLINE_DATASETS
DATASET_NAMES = (*OFFLINE_DATASET_NAMES,                 # == skdtutor.data.DATASETS
                 "mnist", "fashion-mnist", "cifar10", "cifar100")
MAX_EPOCHS = 10_000                             # == skdtutor.config.MAX_EPOCHS
MULTIPLIER_RANGE = (1e-2, 1e3)                  # == skdtutor.losses.MULTIPLIER_RANGE
RECIPE_NAMES = ("cifar100-kd",)                 # == tuple(skdtutor.recipe.RECIPES)
AMP_MODES = ("auto", "bf16", "fp16", "off")     # == skdtutor.recipe_steps.AMP_MODES
