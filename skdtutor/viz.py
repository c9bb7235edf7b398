"""Figures shared by the book's chapters: one style, one colour per method.

:func:`set_style` is called at the top of every chapter; :func:`temperature_grid`
is the static view of softened distributions; :func:`softmax_explorer` is the
temperature slider that works without a kernel.

Why the slider is a few lines of plain JavaScript
-------------------------------------------------
The rendered book is static HTML: an ipywidgets slider there has no kernel behind
it and never redraws. The explorer must therefore compute ``softmax(z / T)`` in the
browser, render identically in the static book, JupyterLab/Notebook and Colab, and
work offline with no CDN. The candidates:

* **ipywidgets / anywidget** need a live kernel (or a widget-state snapshot that
  freezes the plot): ruled out for the static page.
* **Altair / Vega-Lite** can bind a slider to a computed field, but its renderer
  loads vega, vega-lite and vega-embed (about 1 MB) from a CDN in Jupyter and Colab;
  offline it would need the bundles inlined into every output (``vl-convert``) or
  copied into the book's ``_static`` folder, which Colab and Jupyter cannot see.
* **Bokeh** (``CustomJS`` callbacks) likewise needs BokehJS (about 1 MB) inlined per
  page or fetched from a CDN, and its notebook mode needs ``output_notebook`` first.
* **Plotly** sliders step through precomputed frames rather than computing, and
  inline ``plotly.js`` is about 3.5 MB per page.

Each would add a megabyte-scale asset to every page (or a network dependency) to draw
a dozen bars. About seventy lines of dependency-free JavaScript (no framework, ES5, in
:file:`explorer_template.html`) inline in the output run the same way in all three
front ends, offline, and need nothing from the network. The Python side renders a
static first drawing, so a reader without JavaScript (untrusted notebook, GitHub's
viewer) still sees the distribution at the initial temperature.
"""
from __future__ import annotations

import operator
import re
import secrets
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["set_style", "COLUMN_PX", "FIGURE_DPI", "figsize", "COLORS", "METHOD_COLORS", "METHOD_STYLES",
           "method_color", "method_style", "class_colors", "legend_outside", "ce_band", "temperature_grid",
           "errorbar_lines", "glue", "glue_words", "softmax_explorer", "SoftmaxExplorer", "show_input"]

# ----------------------------------------------------------------------------- the figure style
#
# The book's content column is about 688 px wide (sphinx-book-theme at 1280 px). Figures are made
# 6.88 inches wide at 100 dpi, so the PNG is the column's width and is shown at its natural size:
# a font of F points is F * 100 / 72 px on the page (8 pt, the smallest we use, is 11 px).
COLUMN_PX = 688
FIGURE_DPI = 100
_COLUMN_IN = COLUMN_PX / FIGURE_DPI
_FONT_PT = {"font.size": 9.0, "axes.titlesize": 10.0, "axes.labelsize": 9.0, "xtick.labelsize": 8.0,
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


def method_style(method: str) -> dict:
    """Keyword arguments for ``ax.plot``/``ax.errorbar``: the method's ``color``, ``ls`` and
    ``marker``. Methods that share a colour never share a line style."""
    key = _method_key(method)
    style = METHOD_STYLES.get(key, {"ls": "-", "marker": "o"})
    return {"color": method_color(key), **style}


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
    row = _ROW_IN[kind] if height is None else _checked_number(height, "height")
    if row <= 0:
        raise ValueError(f"height must be > 0 inches, got {height!r}")
    return (_COLUMN_IN, row * rows)


def set_style() -> None:
    """The book's figure style: seaborn whitegrid, figures the width of the content column
    (:func:`figsize`), fonts of 8-10.5 pt (11-15 px on the page), the method colours as the
    colour cycle, and ``bbox_inches="tight"`` when saving (so that :func:`legend_outside`
    legends are kept)."""
    import seaborn as sns
    from cycler import cycler

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({
        "figure.figsize": figsize("one"), "figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI,
        "savefig.bbox": "tight", **_FONT_PT,
        "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=[COLORS[k] for k in ("kd", "skd", "dice", "kd@dice", "ce", "teacher")]),
        "lines.linewidth": 1.6, "lines.markersize": 5, "errorbar.capsize": 3,
        "legend.frameon": False, "legend.borderaxespad": 0.3, "legend.handlelength": 2.4,
        "grid.linewidth": 0.6,
    })


def legend_outside(target=None, where: str = "below", ncol: int | None = None, **kwargs):
    """A legend that covers no data: below the figure (default, keeps the figure the column's
    width) or to the ``"right"`` of the axes. ``target`` is an Axes (its handles) or a Figure
    (the handles of all its axes, each label once). Call it after ``fig.tight_layout()``.
    Returns the Legend (``None`` when there is nothing to label)."""
    from matplotlib.figure import Figure

    target = plt.gca() if target is None else target
    axes = target.axes if isinstance(target, Figure) else [target]
    fig = target if isinstance(target, Figure) else target.figure
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not handles:
        return None
    kwargs.setdefault("frameon", False)
    if where == "below":
        if ncol is None:
            longest = max(len(lab) for lab in labels)
            ncol = max(1, min(len(labels), int(60 // max(longest + 4, 1))))
        return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                          bbox_transform=fig.transFigure, ncol=ncol, **kwargs)
    if where == "right":
        ax = axes[-1]
        return ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5), ncol=ncol or 1,
                         **kwargs)
    raise ValueError(f"where must be 'below' or 'right', got {where!r}")


def ce_band(ax, mean, std, label: str = "CE (labels only)", scale: float = 1.0):
    """The CE baseline as a line at ``mean`` with a band of ± ``std`` (both in the axes' units,
    or multiplied by ``scale``, e.g. 100 for fractions shown in %). Returns the line."""
    m = _checked_number(mean, "mean") * scale
    s = _checked_number(std, "std (NaN: was the baseline run on a single seed?)") * scale
    if s < 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    ax.axhspan(m - s, m + s, color=COLORS["ce"], alpha=0.13, lw=0, zorder=0)
    return ax.axhline(m, color=COLORS["ce"], lw=1.4, ls="-", label=label, zorder=1)


def temperature_grid(logits, temperatures: Sequence[float] = (1, 2, 4, 8), class_names=None,
                     title: str | None = None, highlight: int | None = None):
    """Bar charts of ``softmax(logits / T)`` for a few temperatures, side by side, the
    ``highlight`` class (e.g. the true label) in ``COLORS["true"]``.

    ``logits`` is one vector (C,). Returns the matplotlib Figure, the column's width. This is
    the static view that a rendered page shows without a kernel.
    """
    z = torch.as_tensor(logits, dtype=torch.float64).flatten()
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(z))]
    temps = [_checked_temperature(T) for T in temperatures]
    n = len(temps)
    size = figsize("grid", height=2.3) if n > 2 else figsize("two", height=2.5)
    fig, axes = plt.subplots(1, n, figsize=size, sharey=True, squeeze=False)
    colors = class_colors(len(z), highlight, base="kd")
    rotate = 90 if (max(map(len, names)) > 2 and len(names) * n > 16) or max(map(len, names)) > 5 else 0
    for ax, T in zip(axes[0], temps):
        p = torch.softmax(z / T, dim=0).numpy()
        ax.bar(np.arange(len(p)), p, color=colors)
        ax.set_xticks(np.arange(len(p)), names, rotation=rotate)
        ax.set_title(f"T = {T:g}")
        ax.set_ylim(0, 1)
        ax.grid(axis="x", visible=False)
    axes[0][0].set_ylabel("probability")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def errorbar_lines(summary, x: str, group: str = "method", ax=None, value: str = "mean",
                   err: str = "std", scale: float = 100.0, ylabel: str = "test accuracy (%)",
                   legend: bool = True, dodge: float = 0.0):
    """Mean ± std lines, one per ``group`` value, from a :func:`skdtutor.experiments.summarize`
    table, each in its method's colour, line style and marker (:func:`method_style`).
    ``dodge`` shifts the k-th of n lines by the factor ``1 + dodge * (k - (n - 1) / 2)`` along x
    (for log axes), so that error bars do not overlap. Returns the Axes."""
    ax = ax or plt.gca()
    groups = list(summary.groupby(group, sort=False))
    for k, (name, part) in enumerate(groups):
        part = part.sort_values(x)
        xs = part[x].to_numpy()
        if dodge:
            xs = xs.astype(float) * (1 + dodge * (k - (len(groups) - 1) / 2))
        ax.errorbar(xs, part[value].to_numpy(dtype=float) * scale,
                    yerr=part[err].fillna(0).to_numpy(dtype=float) * scale, capsize=3,
                    label=str(name), **method_style(str(name)))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    return ax


def glue(name: str, value, display: bool = False):
    """``myst_nb.glue`` when myst-nb is installed (the book build); otherwise a no-op that
    still shows the value when ``display=True`` (Colab, plain Jupyter). Returns ``value``.

    NumPy scalars and one-element tensors or arrays are glued as Python numbers, so
    that ``{glue:text}`name:.2f``` formats them."""
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1) \
            or (isinstance(value, np.ndarray) and value.size == 1):
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display
            _display(value)
        return value
    _glue(name, value, display=display)
    return value


def glue_words(name: str, text: str):
    """Glue a short Markdown phrase chosen from the numbers (``"smaller"``, ``"both datasets"``),
    shown in the text with ``{glue:md}`name```, so the wording follows the results."""
    from IPython.display import Markdown

    return glue(name, Markdown(text))


class SoftmaxExplorer:
    """A temperature slider that needs no kernel: the HTML carries the logits and a short
    script that recomputes ``softmax(z / T)`` in the browser (see the module docstring for
    why this is plain JavaScript rather than ipywidgets or a plotting library).

    Displaying the object (last expression of a cell, or ``display(explorer)``) renders it
    through ``_repr_html_``; ``.html()`` returns the markup and ``.to_ipython()`` an
    ``IPython.display.HTML``. Neither path imports ipywidgets.

    The markup is one ``<div class="skd-explorer">`` holding a static first drawing (the
    bars at the initial T, computed here in Python), the controls (hidden until the
    script runs), the logits as a JSON data island (``<script type="application/json"
    class="skd-spec">``) and the script. Without JavaScript (an untrusted notebook,
    GitHub's viewer) the reader still sees the distribution at the initial T.
    """

    _counter = 0

    def __init__(self, logits, class_names=None, labels=None, temperature: float = 1.0,
                 t_range=(0.25, 32.0), multiplier: float | None = None, title: str | None = None,
                 highlight=None, width: int = 688, m_range=(0.5, 6.0)):
        z = torch.as_tensor(logits).detach().to(device="cpu", dtype=torch.float64)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] < 2 or z.shape[0] < 1:
            raise ValueError(f"logits must be a vector (C,) or a few rows (k, C) with C >= 2, got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("logits contain NaN or infinite values")
        lo, hi = _checked_range(t_range, "t_range")
        temperature = _checked_temperature(temperature)
        if not lo <= temperature <= hi:
            raise ValueError(f"temperature {temperature} lies outside t_range {t_range}")
        m_lo, m_hi = _checked_range(m_range, "m_range")
        if multiplier is not None:
            multiplier = _checked_positive(multiplier, "multiplier")
            if not m_lo <= multiplier <= m_hi:
                raise ValueError(f"multiplier {multiplier} lies outside m_range {m_range}")
        k, c = z.shape
        if k > _MAX_SAMPLES:
            raise ValueError(f"{k} rows of logits: the explorer is for one or a few samples "
                             f"(at most {_MAX_SAMPLES}); pick some rows, e.g. logits[:8]")
        names = [str(n) for n in _as_list(class_names)] if class_names is not None else [str(i) for i in range(c)]
        if len(names) != c:
            raise ValueError(f"{len(names)} class names for {c} classes")
        row_labels = [str(s) for s in _as_list(labels)] if labels is not None else [f"#{i}" for i in range(k)]
        if len(row_labels) != k:
            raise ValueError(f"{len(row_labels)} labels for {k} rows of logits")
        given, highlight = highlight, _as_list(highlight)
        if highlight is None or not isinstance(highlight, list):
            highlight = [highlight] * k
        try:
            highlight = [None if h is None else operator.index(h) for h in highlight]
        except TypeError:
            raise ValueError(f"highlight must be a class index, one per row, or None; got {given!r}") from None
        if len(highlight) != k:
            raise ValueError(f"{len(highlight)} highlight entries for {k} rows of logits")
        if any(h is not None and not 0 <= h < c for h in highlight):
            raise ValueError(f"highlight {highlight} must hold class indices in [0, {c})")
        if not (isinstance(width, (int, np.integer)) and width >= 200):
            raise ValueError(f"width must be an integer >= 200 (pixels), got {width!r}")
        self.logits, self.class_names, self.row_labels = z, names, row_labels
        self.temperature, self.t_range = temperature, (lo, hi)
        self.multiplier, self.m_range = multiplier, (m_lo, m_hi)
        self.title = title or "Softened distribution softmax(z / T)"
        self.highlight, self.width = highlight, int(width)
        SoftmaxExplorer._counter += 1
        # A random part keeps ids unique across kernel restarts in one notebook document;
        # each further rendering of the same object gets a suffix (see html()).
        self.element_id = f"skd-explorer-{SoftmaxExplorer._counter}-{secrets.token_hex(4)}"
        self._renders = 0

    def __repr__(self) -> str:
        k, c = self.logits.shape
        extra = f", multiplier={self.multiplier:g}" if self.multiplier is not None else ""
        return (f"<SoftmaxExplorer: {k} sample(s) x {c} classes, T={self.temperature:g} in "
                f"[{self.t_range[0]:g}, {self.t_range[1]:g}]{extra}; display it in Jupyter or the book>")

    def probabilities(self, temperature: float | None = None, multiplier: float | None = None,
                      sample: int = 0) -> np.ndarray:
        """What the bars show: ``softmax(z / T)``, or with ``multiplier``
        ``softmax(sphere(z, multiplier) / T)`` (:func:`skdtutor.losses.sphere`).

        Raises ``ValueError`` for a temperature or multiplier that is not a finite number > 0
        (``T <= 0`` would divide by zero or invert the distribution) and for a ``sample`` that
        is not a row of the logits."""
        from .losses import sphere

        T = self.temperature if temperature is None else _checked_temperature(temperature)
        k = self.logits.shape[0]
        try:
            row = operator.index(sample)
        except TypeError:
            raise ValueError(f"sample must be a row index, got {sample!r}") from None
        if not 0 <= row < k:
            raise ValueError(f"sample {sample!r} outside [0, {k}) (the explorer holds {k} row(s))")
        z = self.logits[row:row + 1]
        if multiplier is not None:
            z = sphere(z, _checked_positive(multiplier, "multiplier"))
        return torch.softmax(z / T, dim=1)[0].numpy()

    def html(self) -> str:
        """The markup: one self-contained ``<div>`` (no external files, no network)."""
        import html as html_mod
        import json
        from importlib import resources

        esc = html_mod.escape
        element_id = self.element_id if self._renders == 0 else f"{self.element_id}-r{self._renders}"
        self._renders += 1
        k, c = self.logits.shape
        lo, hi = self.t_range
        m_lo, m_hi = self.m_range
        spherical = self.multiplier is not None
        m0 = self.multiplier if spherical else min(max(2.0, m_lo), m_hi)
        spec = {"classes": self.class_names, "spherical": spherical,
                "samples": [{"label": lab, "logits": row, "highlight": h}
                            for lab, row, h in zip(self.row_labels, self.logits.tolist(), self.highlight)]}
        # JSON inside <script>: escape <, > and & so no class name can close the element.
        spec_json = (json.dumps(spec).replace("<", "\\u003c").replace(">", "\\u003e")
                     .replace("&", "\\u0026"))
        n_panels = 2 if spherical else 1
        bar = min(_BAR_MAX, (min(self.width, 700) - 26 - 18 * (n_panels - 1)) // (n_panels * c) - 2)
        panels = [("raw", "softmax(z / T)", COLORS["kd"], self.probabilities())]
        if spherical:
            panels = [("raw", "KD, raw logits: softmax(z / T)", COLORS["kd"], self.probabilities()),
                      ("spherical", "SKD: softmax(sphere(z, m) / T)", COLORS["skd"],
                       self.probabilities(multiplier=self.multiplier))]
        highlight = self.highlight[0]
        panel_html = "".join(
            _panel_html(kind, caption, color, probs, self.class_names, highlight, bar)
            for kind, caption, color, probs in panels)
        t_ticks = [t for t in 2.0 ** np.arange(-6, 11) if lo <= t <= hi]
        m_ticks = [m for m in np.arange(1, 11, dtype=float) if m_lo <= m <= m_hi]
        options = "".join(f'<option value="{i}">{esc(s)}</option>' for i, s in enumerate(self.row_labels))
        replacements = {
            "__ID__": element_id,
            "__WIDTH__": str(self.width),
            "__TITLE__": esc(self.title),
            "__TMIN__": _num(np.log10(lo)), "__TMAX__": _num(np.log10(hi)),
            "__T0__": _num(np.log10(self.temperature)),
            "__T0_TEXT__": _fmt_t(self.temperature),
            "__T_TICKS__": "".join(f'<option value="{_num(np.log10(t))}"></option>' for t in t_ticks),
            "__MMIN__": _num(m_lo), "__MMAX__": _num(m_hi), "__M0__": _num(m0),
            "__M0_TEXT__": f"{m0:.2f}",
            "__M_TICKS__": "".join(f'<option value="{_num(m)}"></option>' for m in m_ticks),
            "__MULT_STYLE__": "" if spherical else "display:none;",
            "__SAMPLE_STYLE__": "" if k > 1 else "display:none;",
            "__OPTIONS__": options,
            "__STATIC_NOTE__": (f"static view at T = {_fmt_t(self.temperature)}"
                                + (f", m = {m0:.2f}" if spherical else "")
                                + ". The sliders need JavaScript: run this cell (or trust the notebook)"
                                  " in Jupyter, or open the book's web page."),
            "__PANELS__": panel_html,
            "__LEGEND__": "" if all(h is None for h in self.highlight) else (
                f'<span style="display:inline-block;width:10px;height:10px;background:{_HIGHLIGHT};'
                f'vertical-align:-1px"></span> highlighted class'),
            "__SPEC__": spec_json,
        }
        replacements["__BAR_HEIGHT__"] = str(_BAR_HEIGHT)
        replacements["__HIGHLIGHT__"] = _HIGHLIGHT
        template = resources.files("skdtutor").joinpath("explorer_template.html").read_text()
        # One pass, so that text inserted (a title, a class name) is never substituted again.
        return re.sub(r"__[A-Z0-9_]+?__", lambda m: replacements.get(m.group(0), m.group(0)), template)

    def _repr_html_(self) -> str:
        return self.html()

    def to_ipython(self):
        """An ``IPython.display.HTML`` object with the markup (for ``display(...)``)."""
        from IPython.display import HTML

        return HTML(self.html())


def _as_list(value):
    """Tensors and arrays as plain lists (so that str() gives '3', not 'tensor(3)');
    anything else unchanged."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (tuple, range)):
        return list(value)
    return value


def _checked_number(value, name: str) -> float:
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


def _checked_positive(value, name: str) -> float:
    """A finite number > 0."""
    number = _checked_number(value, name)
    if not number > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def _checked_temperature(value) -> float:
    """A temperature: a finite number > 0 (T <= 0 would divide by zero or invert softmax)."""
    return _checked_positive(value, "temperature")


def _num(value) -> str:
    """A plain decimal number for HTML attributes (``-0.6020599913279624``, never
    ``np.float64(...)``): the shortest repr of the Python float."""
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(number)


def _checked_range(pair, name: str) -> tuple[float, float]:
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {pair!r}") from None
    lo, hi = _checked_number(lo, name), _checked_number(hi, name)
    if not 0 < lo < hi:
        raise ValueError(f"{name} must be (low, high) with 0 < low < high, got {pair!r}")
    return lo, hi


def _fmt_t(T: float) -> str:
    """Three significant digits, as JavaScript's ``T.toPrecision(3)`` shows them (T < 1000)."""
    return f"{T:#.3g}".rstrip(".")


_MAX_SAMPLES = 200  # rows of logits one explorer accepts (a menu entry each)
_BAR_HEIGHT = 120  # pixels for probability 1; grid lines every 0.25
_BAR_MAX = 44      # widest bar, pixels (more when a panel has only a few classes)
_HIGHLIGHT = COLORS["true"]


def _panel_html(kind, caption, color, probs, class_names, highlight, bar) -> str:
    """One bar chart. Columns share the panel's width (flex), at most ``_BAR_MAX`` px each;
    ``bar`` is the expected column width, used only to decide whether the static drawing
    prints values and names (the script re-decides from the measured width)."""
    import html as html_mod

    esc = html_mod.escape
    hide_values = "" if bar >= 20 else "visibility:hidden;"
    hide_names = "" if bar >= 10 else "visibility:hidden;"
    axis_w = 20
    max_width = max(250, len(class_names) * (_BAR_MAX + 2) + axis_w)  # room for the captions
    bar_max = max(_BAR_MAX, (max_width - axis_w - 1) // len(class_names) - 2)  # few classes: wider bars
    col = f"flex:1 1 0;min-width:0;max-width:{bar_max}px;"
    entropy = float(-(probs * np.log(np.clip(probs, 1e-300, None))).sum())
    cols = []
    for j, (name, p) in enumerate(zip(class_names, probs)):
        fill = _HIGHLIGHT if j == highlight else color
        cols.append(
            f'<div class="skd-col" style="{col}display:flex;flex-direction:column;'
            f'justify-content:flex-end;height:100%">'
            f'<div class="skd-val" style="font-size:10px;line-height:12px;color:#333;text-align:center;'
            f'overflow:hidden;white-space:nowrap;{hide_values}">{p:.2f}</div>'
            f'<div class="skd-bar" data-class="{j}" data-prob="{p:.12g}" title="{esc(name)}: {p:.4f}" '
            f'style="height:{max(1, round(p * _BAR_HEIGHT))}px;background:{fill};'
            f'border-radius:2px 2px 0 0"></div></div>')
    names = "".join(
        f'<div class="skd-name" title="{esc(n)}" style="{col}text-align:center;font-size:11px;'
        f'overflow:hidden;text-overflow:ellipsis;white-space:nowrap;'
        f'font-weight:{"bold" if j == highlight else "normal"};{hide_names}">{esc(n)}</div>'
        for j, n in enumerate(class_names))
    ticks = "".join(
        f'<span style="position:absolute;right:4px;bottom:{round(v * _BAR_HEIGHT) - 6}px">{text}</span>'
        for v, text in ((0.0, "0"), (0.5, ".5"), (1.0, "1")))
    return (
        f'<div class="skd-panel" data-panel="{kind}" data-color="{color}" '
        f'style="flex:1 1 240px;min-width:0;max-width:{max_width}px">'
        f'<div title="{esc(caption)}" style="font-size:12px;color:#222;white-space:nowrap;overflow:hidden;'
        f'text-overflow:ellipsis">{esc(caption)}</div>'
        f'<div class="skd-stats" style="font-size:11px;color:#666;margin-bottom:2px">'
        f'max p {probs.max():.3f} \u00b7 entropy {entropy:.3f} nats</div>'
        f'<div style="display:flex">'
        f'<div aria-hidden="true" style="position:relative;flex:none;width:{axis_w}px;'
        f'height:{_BAR_HEIGHT + 14}px;font-size:9px;color:#888">{ticks}</div>'
        f'<div class="skd-plot" style="flex:1 1 auto;min-width:0;display:flex;align-items:flex-end;gap:2px;'
        f'height:{_BAR_HEIGHT + 14}px;border-bottom:1px solid #888;border-left:1px solid #ccc;'
        f'background:repeating-linear-gradient(to top,#e8e8e8 0,#e8e8e8 1px,transparent 1px,'
        f'transparent {_BAR_HEIGHT // 4}px)">{"".join(cols)}</div></div>'
        f'<div style="display:flex;margin-top:2px"><div style="flex:none;width:{axis_w + 1}px"></div>'
        f'<div style="flex:1 1 auto;min-width:0;display:flex;gap:2px">{names}</div></div></div>')


def softmax_explorer(logits, class_names=None, **kwargs) -> SoftmaxExplorer:
    """Kernel-free temperature slider for one logit vector (C,) or a few (k, C).

    ``logits``: a list, NumPy array or torch tensor (any device, grads are detached).
    Keyword arguments: ``labels`` (names of the rows, shown in a sample menu),
    ``temperature`` (initial T), ``t_range`` (slider range, log scale),
    ``multiplier`` (adds an SKD panel: softmax(sphere(z, m) / T) with a multiplier
    slider over ``m_range``), ``title``, ``highlight`` (a class index, or one per row,
    drawn in ``COLORS["true"]``, e.g. the true label), ``width`` (pixels, default the
    column's 688).
    Raises ``ValueError`` on malformed input. Display the result in a cell.
    """
    return SoftmaxExplorer(logits, class_names, **kwargs)


def show_input(x, ax=None, title: str | None = None):
    """Draw one input sample on ``ax``: an image ``(C, H, W)`` (grey for one channel) or a
    1-D signal ``(C, L)`` (one line per channel, e.g. MNIST-1D). Ticks are hidden for images.
    Returns the Axes."""
    ax = ax or plt.gca()
    a = torch.as_tensor(x).detach().cpu().float()
    if a.dim() == 3:
        img = a[0] if a.shape[0] == 1 else a.permute(1, 2, 0)
        if img.dim() == 3:  # colour: rescale each image to [0, 1] for display
            img = (img - img.min()) / (img.max() - img.min() + 1e-8)
        ax.imshow(img.numpy(), cmap="gray_r" if img.dim() == 2 else None, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    elif a.dim() == 2:
        for channel in a:
            ax.plot(channel.numpy(), lw=1.2)
        ax.set_xlabel("position")
    else:
        raise ValueError(f"show_input takes one sample (C, H, W) or (C, L), got shape {tuple(a.shape)}")
    if title:
        ax.set_title(title)
    return ax
