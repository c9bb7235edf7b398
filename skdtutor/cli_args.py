"""The command line's argument types, parser classes and checks (no torch import).

Shared by :mod:`skdtutor.__main__` (``compare``, ``results``) and :mod:`skdtutor.cli_recipe`
(``recipe``): each argparse ``type=`` turns a bad value into one usage line naming it.
"""
from __future__ import annotations

import argparse
import math

from .cli_spec import CLI_METHODS, DATASET_NAMES, MAX_EPOCHS, OFFLINE_DATASET_NAMES


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"temperatures must be numbers > 0, got {text!r}")
    return values


def _choices(text: str, known, what: str) -> list[str]:
    """Comma-separated names, each one of ``known``; an argparse error names the unknown ones."""
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in known]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown or text!r}; choose from "
                                         f"{','.join(known)}")
    return values


def _methods(text: str) -> list[str]:
    return _choices(text, CLI_METHODS, "method")


def _datasets(text: str) -> list[str]:
    return _choices(text, DATASET_NAMES, "dataset")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _epochs(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_EPOCHS:
        raise argparse.ArgumentTypeError(f"{text} epochs is above the limit of {MAX_EPOCHS}; pass fewer")
    return value


def _seeds(text: str):
    from .studies import seed_list

    try:
        values = [int(v) for v in text.split(",") if v.strip()] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated integers, got {text!r}") \
            from None
    try:
        seed_list(values)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds {text}: {exc}") from None
    return values


def _check_csv(path) -> None:
    """A ValueError unless ``path`` can be written: its folder exists and is writable, and
    it is not a folder itself (checked before training, so no run is lost)."""
    import os
    from pathlib import Path

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"--csv {str(path)!r} is a folder; pass a file name such as {str(path / 'runs.csv')!r}")
    if not folder.is_dir():
        raise ValueError(f"--csv {str(path)!r}: folder {str(folder)!r} does not exist; create it or "
                         "pass another path")
    if (path.exists() and not os.access(path, os.W_OK)) or not os.access(folder, os.W_OK):
        raise ValueError(f"--csv {str(path)!r} is not writable; pass a path in a folder you can write to")


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (the problem and where to look)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: ...)`` only where the help does not already say the default and
    the default is not ``None`` (which means: the dataset's setting, said in the help)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


def _offline_words() -> str:
    """The datasets that need no download, as words ("digits, mnist1d and mnist-5k")."""
    *rest, last = OFFLINE_DATASET_NAMES
    return f"{', '.join(rest)} and {last}" if rest else last
