"""Figures shared by the book's chapters: one style, one colour per method.

:func:`set_style` is called at the top of every chapter; :func:`temperature_grid`
is the static (kernel-free) view of softened distributions.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["set_style", "METHOD_COLORS", "method_color", "temperature_grid", "errorbar_lines", "glue",
           "softmax_explorer", "SoftmaxExplorer"]

# One colour per method, used by every chapter.
METHOD_COLORS = {"ce": "#4c4c4c", "kd": "#1f77b4", "skd": "#d62728", "dice": "#2ca02c",
                 "kd@dice-T": "#9467bd", "pseudo": "#ff7f0e", "teacher": "#8c564b"}


def method_color(method: str) -> str:
    """The book's colour for a method name (grey for unknown ones)."""
    return METHOD_COLORS.get(method.lower(), "#7f7f7f")


def set_style() -> None:
    """The book's figure style: seaborn whitegrid, readable fonts, compact figures."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    plt.rcParams.update({"figure.figsize": (6.4, 3.6), "figure.dpi": 110, "savefig.dpi": 110,
                         "axes.titleweight": "bold", "axes.spines.top": False,
                         "axes.spines.right": False})


def temperature_grid(logits, temperatures: Sequence[float] = (1, 2, 4, 8), class_names=None,
                     title: str | None = None, highlight: int | None = None):
    """Bar charts of ``softmax(logits / T)`` for a few temperatures, side by side.

    ``logits`` is one vector (C,). Returns the matplotlib Figure. This is the
    static view that a rendered page shows without a kernel.
    """
    z = torch.as_tensor(logits, dtype=torch.float64).flatten()
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(z))]
    fig, axes = plt.subplots(1, len(temperatures), figsize=(2.3 * len(temperatures), 2.6),
                             sharey=True, squeeze=False)
    for ax, T in zip(axes[0], temperatures):
        p = torch.softmax(z / T, dim=0).numpy()
        colors = ["#1f77b4"] * len(p)
        if highlight is not None:
            colors[highlight] = "#d62728"
        ax.bar(np.arange(len(p)), p, color=colors)
        ax.set_xticks(np.arange(len(p)), names, rotation=90 if max(map(len, names)) > 2 else 0)
        ax.set_title(f"T = {T:g}")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("probability")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def errorbar_lines(summary, x: str, group: str = "method", ax=None, value: str = "mean",
                   err: str = "std", scale: float = 100.0, ylabel: str = "test accuracy (%)"):
    """Mean ± std lines, one per ``group`` value, from a :func:`skdtutor.experiments.summarize`
    table. Returns the Axes."""
    ax = ax or plt.gca()
    for name, part in summary.groupby(group, sort=False):
        part = part.sort_values(x)
        ax.errorbar(part[x], part[value] * scale, yerr=part[err].fillna(0) * scale, marker="o",
                    capsize=3, label=str(name), color=method_color(str(name)))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    return ax


def glue(name: str, value, display: bool = False):
    """``myst_nb.glue`` when myst-nb is installed (the book build); otherwise a no-op that
    still shows the value when ``display=True`` (Colab, plain Jupyter). Returns ``value``."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display
            _display(value)
        return value
    _glue(name, value, display=display)
    return value


class SoftmaxExplorer:
    """A kernel-free temperature slider: its HTML carries the logits and a few lines of
    JavaScript that recompute ``softmax(z / T)`` in the browser.

    Why hand-written JavaScript rather than ipywidgets or a plotting library:
    an ipywidgets slider in a static page has no kernel behind it and never
    redraws; Vega-Lite (Altair) could compute the softmax in the browser, but its
    three JavaScript bundles would have to be copied into the book and loaded
    differently in Jupyter, Colab and the static site. About sixty lines of
    dependency-free JavaScript inline in the output run the same way in all three,
    offline, with no CDN, and cost nothing to serve.

    Displaying the object (last expression of a cell) renders it; ``.html()`` returns the markup.
    """

    _counter = 0

    def __init__(self, logits, class_names=None, labels=None, temperature: float = 1.0,
                 t_range=(0.25, 32.0), multiplier: float | None = None, title: str | None = None,
                 highlight=None, width: int = 760):
        z = torch.as_tensor(logits, dtype=torch.float64)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] < 2:
            raise ValueError(f"logits must be a vector (C,) or a few rows (k, C) with C >= 2, got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("logits contain NaN or infinite values")
        lo, hi = t_range
        if not 0 < lo < hi:
            raise ValueError(f"t_range must be (low, high) with 0 < low < high, got {t_range!r}")
        if not lo <= temperature <= hi:
            raise ValueError(f"temperature {temperature} lies outside t_range {t_range}")
        if multiplier is not None and not 0.5 <= multiplier <= 6:
            raise ValueError(f"multiplier must lie in [0.5, 6] for the slider, got {multiplier}")
        k, c = z.shape
        names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(c)]
        if len(names) != c:
            raise ValueError(f"{len(names)} class names for {c} classes")
        row_labels = [str(s) for s in labels] if labels is not None else [f"#{i}" for i in range(k)]
        if len(row_labels) != k:
            raise ValueError(f"{len(row_labels)} labels for {k} rows of logits")
        if highlight is None or isinstance(highlight, int):
            highlight = [highlight] * k
        self.logits, self.class_names, self.row_labels = z, names, row_labels
        self.temperature, self.t_range, self.multiplier = float(temperature), (lo, hi), multiplier
        self.title = title or "Softened distribution softmax(z / T)"
        self.highlight, self.width = list(highlight), width
        SoftmaxExplorer._counter += 1
        self.element_id = f"skd-explorer-{SoftmaxExplorer._counter}-{abs(hash(z.numpy().tobytes())) % 10**8}"

    def html(self) -> str:
        import html as html_mod
        import json
        from importlib import resources

        spec = {"classes": self.class_names, "spherical": self.multiplier is not None,
                "samples": [{"label": lab, "logits": [float(v) for v in row], "highlight": h}
                            for lab, row, h in zip(self.row_labels, self.logits.tolist(), self.highlight)]}
        template = resources.files("skdtutor").joinpath("explorer_template.html").read_text()
        lo, hi = self.t_range
        n_panels = 2 if self.multiplier is not None else 1
        replacements = {
            "__ID__": self.element_id, "__WIDTH__": str(self.width),
            "__TITLE__": html_mod.escape(self.title),
            "__TMIN__": f"{np.log10(lo):.4f}", "__TMAX__": f"{np.log10(hi):.4f}",
            "__T0__": f"{np.log10(self.temperature):.4f}",
            "__M0__": f"{self.multiplier or 2.0:g}",
            "__MULT_STYLE__": "" if self.multiplier is not None else 'style="display:none"',
            "__SAMPLE_STYLE__": "" if len(self.row_labels) > 1 else 'style="display:none"',
            "__BARS_WIDTH__": str(int((self.width - 40) / n_panels)),
            "__SPEC__": json.dumps(spec).replace("</", "<\\/"),
        }
        for key, value in replacements.items():
            template = template.replace(key, value)
        return template

    def _repr_html_(self) -> str:
        return self.html()


def softmax_explorer(logits, class_names=None, **kwargs) -> SoftmaxExplorer:
    """Kernel-free temperature slider for one logit vector (C,) or a few (k, C).

    Keyword arguments: ``labels`` (names of the rows, shown in a sample menu),
    ``temperature`` (initial T), ``t_range`` (slider range, log scale),
    ``multiplier`` (adds an SKD panel: softmax(sphere(z, m) / T) with a multiplier
    slider), ``title``, ``highlight`` (class index drawn in red, e.g. the true label).
    """
    return SoftmaxExplorer(logits, class_names, **kwargs)
