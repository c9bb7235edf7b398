"""The book's visual constants, shared by the figures (:mod:`skdtutor.viz`) and the
kernel-free explorer (:mod:`skdtutor.explorer`): the column width, one colour and line
style per concept, figure sizes, and the validated numbers they take.

Plain Python and NumPy only (no matplotlib), so the explorer stays light. Everything here
is re-exported by :mod:`skdtutor.viz`, which is where chapters read it (``viz.COLORS``,
``viz.figsize``, ``viz.class_colors``).
"""
from __future__ import annotations

import operator

import numpy as np

__all__ = ["COLUMN_PX", "FIGURE_DPI", "FONT_PT", "figsize", "COLORS", "METHOD_COLORS", "METHOD_STYLES",
           "method_color", "method_style", "class_colors", "finite_number", "positive_number",
           "checked_temperature"]

# ----------------------------------------------------------------------------- the figure style
#
# The book's content column is about 688 px wide (sphinx-book-theme at 1280 px). Figures are made
# 6.88 inches wide at 100 dpi, so the PNG is the column's width and is shown at its natural size:
# a font of F points is F * 100 / 72 px on the page (8 pt, the smallest we use, is 11 px).
COLUMN_PX = 688
FIGURE_DPI = 100
_COLUMN_IN = COLUMN_PX / FIGURE_DPI
FONT_PT = {"font.size": 9.0, "axes.titlesize": 10.0, "axes.labelsize": 9.0, "xtick.labelsize": 8.0,
            "ytick.labelsize": 8.0, "legend.fontsize": 8.0, "legend.title_fontsize": 8.5,
            "figure.titlesize": 10.5}
# Height (inches) of one row of panels per figure kind.
_ROW_IN = {"one": 3.4, "two": 2.9, "grid": 1.9}

# One colour per concept, in static figures and explorers alike (Okabe-Ito based, colour-blind
# safe). The true class (the class an explorer highlights) is vermillion and nothing else is red.
COLORS = {
    "true": "#D55E00",        # the true / highlighted class
    "other": "#9DB4C8",       # every other class in a bar chart of probabilities
    "ce": "#4D4D4D",          # cross-entropy on labels only (no teacher)
    "kd": "#0072B2",          # Hinton KD, softmax(z / T)
    "skd": "#CC79A7",         # spherical KD, softmax(sphere(z, m) / T)
    "dice": "#009E73",        # Dice loss against the teacher
    "kd@dice": "#E69F00",     # KD at the Dice-chosen temperature
    "teacher": "#8C564B",     # the teacher itself
}
COLORS["highlight"] = COLORS["true"]
# The methods of skdtutor.losses.METHODS plus the two-stage ``kd@dice`` of the experiments.
METHOD_COLORS = {name: COLORS[name] for name in ("ce", "kd", "skd", "dice", "kd@dice", "teacher")}
# Line style and marker per method, so that lines differ even in grey print.
METHOD_STYLES = {
    "ce": {"ls": "-", "marker": None},
    "kd": {"ls": "-", "marker": "o"},
    "skd": {"ls": "--", "marker": "s"},
    "dice": {"ls": "-.", "marker": "^"},
    "kd@dice": {"ls": ":", "marker": "*"},
    "teacher": {"ls": "-", "marker": "D"},
}
_UNKNOWN = "#7F7F7F"


def _method_key(method: str) -> str:
    key = str(method).lower().strip()
    if key in METHOD_COLORS:
        return key
    if key.startswith("kd@dice"):       # "kd@dice-T", "kd@dice (T = 4)": the same method
        return "kd@dice"
    return key


def method_color(method: str) -> str:
    """The book's colour for a method (``ce``, ``kd``, ``skd``, ``dice``, ``kd@dice``) or
    ``teacher``; grey for anything else."""
    return METHOD_COLORS.get(_method_key(method), _UNKNOWN)


def method_style(method: str, **overrides) -> dict:
    """Keyword arguments for ``ax.plot``/``ax.errorbar``: the method's ``color``, ``ls`` and
    ``marker``, then ``overrides`` (``method_style("kd", marker=None, lw=1)``). Methods that
    share a colour never share a line style."""
    key = _method_key(method)
    style = METHOD_STYLES.get(key, {"ls": "-", "marker": "o"})
    return {"color": method_color(key), **style, **overrides}


def class_colors(n_classes: int, true: int | None = None, base: str | None = None) -> list[str]:
    """Bar colours for a probability vector over ``n_classes``: the true class in
    ``COLORS["true"]``, the others in ``base`` (a colour, or a method name such as ``"kd"``;
    default ``COLORS["other"]``)."""
    n = operator.index(n_classes)
    if n < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes!r}")
    fill = COLORS["other"] if base is None else (method_color(base) if _method_key(base) in METHOD_COLORS
                                                  else base)
    colors = [fill] * n
    if true is not None:
        t = operator.index(true)
        if not 0 <= t < n:
            raise ValueError(f"true class {true!r} outside [0, {n})")
        colors[t] = COLORS["true"]
    return colors


def figsize(kind: str = "one", rows: int = 1, height: float | None = None) -> tuple[float, float]:
    """Figure size (inches) for the content column: always :data:`COLUMN_PX` px wide at
    :data:`FIGURE_DPI`, so fonts show at their natural size (>= 11 px).

    ``kind``: ``"one"`` (one panel), ``"two"`` (two panels side by side) or ``"grid"`` (small
    multiples, ``rows`` rows of about 1.9 inches). ``height`` overrides the row height."""
    if kind not in _ROW_IN:
        raise ValueError(f"figsize kind must be one of {sorted(_ROW_IN)}, got {kind!r}")
    try:
        rows = operator.index(rows)
    except TypeError:
        raise ValueError(f"rows must be a positive integer, got {rows!r}") from None
    if rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    row = _ROW_IN[kind] if height is None else finite_number(height, "height")
    if row <= 0:
        raise ValueError(f"height must be > 0 inches, got {height!r}")
    return (_COLUMN_IN, row * rows)


def finite_number(value, name: str) -> float:
    """A finite real number: int, float, NumPy scalar or one-element tensor (not bool)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def positive_number(value, name: str) -> float:
    """A finite number > 0."""
    number = finite_number(value, name)
    if not number > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def checked_temperature(value) -> float:
    """A temperature: a finite number > 0 (T <= 0 would divide by zero or invert softmax)."""
    return positive_number(value, "temperature")


def checked_index(value, size: int, what: str = "sample", within: str = "the rows") -> int:
    """``value`` as an index into ``size`` rows; a clear ``ValueError`` otherwise."""
    try:
        index = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be a row index, got {value!r}") from None
    if not 0 <= index < size:
        raise ValueError(f"{what} {value!r} outside {within} [0, {size})")
    return index

