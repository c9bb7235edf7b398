"""Figures shared by the book's chapters: one style, one colour per method.

:func:`set_style` is called at the top of every chapter; :func:`temperature_grid` is the
static view of softened distributions; :func:`legend_outside`, :func:`ce_band`,
:func:`errorbar_lines` and :func:`probability_bars` draw what the chapters repeat;
:func:`kd_pipeline` is the schematic of the KD objective. :func:`glue` and :func:`glue_words`,
which put numbers and number-chosen words into the text, live in :mod:`skdtutor.glue`.

The constants of the style (column width, colours, line styles, :func:`figsize`,
:func:`class_colors`) live in :mod:`skdtutor.style` and the kernel-free temperature slider
(:func:`softmax_explorer`, :class:`SoftmaxExplorer`) in :mod:`skdtutor.explorer`; both are
re-exported here, so a chapter needs only ``from skdtutor import viz``. matplotlib is
imported when a figure is drawn, not on ``import skdtutor.viz``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .explorer import SoftmaxExplorer, softmax_explorer  # the slider, re-exported for the chapters
from .glue import glue, glue_all, glue_table, glue_words  # numbers into the text, re-exported
from .live import live_explorer  # the ipywidgets explorer (the slider above without a kernel)
from .style import (COLORS, COLUMN_PX, FIGURE_DPI, FONT_PT, METHOD_COLORS, METHOD_STYLES,
                    checked_temperature, class_colors, figsize, finite_number, method_color,
                    method_style)

__all__ = ["set_style", "COLUMN_PX", "FIGURE_DPI", "figsize", "COLORS", "METHOD_COLORS", "METHOD_STYLES",
           "method_color", "method_style", "class_colors", "legend_outside", "ce_band", "temperature_grid",
           "errorbar_lines", "glue", "glue_words", "softmax_explorer", "SoftmaxExplorer", "live_explorer", "show_input",
           "kd_pipeline", "glue_all", "glue_table", "probability_bars", "finish"]


def set_style() -> None:
    """The book's figure style: seaborn whitegrid, figures the width of the content column
    (:func:`figsize`), fonts of 8-10.5 pt (11-15 px on the page), the method colours as the
    colour cycle, and ``bbox_inches="tight"`` when saving (so that :func:`legend_outside`
    legends are kept)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from cycler import cycler

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({
        "figure.figsize": figsize("one"), "figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI,
        "savefig.bbox": "tight", **FONT_PT,
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
    import matplotlib.pyplot as plt
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
    m = finite_number(mean, "mean") * scale
    s = finite_number(std, "std (NaN: was the baseline run on a single seed?)") * scale
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
    import matplotlib.pyplot as plt

    z = torch.as_tensor(logits, dtype=torch.float64).flatten()
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(z))]
    temps = [checked_temperature(T) for T in temperatures]
    n = len(temps)
    size = figsize("grid", height=2.3) if n > 2 else figsize("two", height=2.5)
    fig, axes = plt.subplots(1, n, figsize=size, sharey=True, squeeze=False)
    rotate = 90 if (max(map(len, names)) > 2 and len(names) * n > 16) or max(map(len, names)) > 5 else 0
    for ax, T in zip(axes[0], temps):
        probability_bars(torch.softmax(z / T, dim=0), names, highlight, "kd", ax=ax,
                         title=f"T = {T:g}", ylim=1.0, rotation=rotate)
    axes[0][0].set_ylabel("probability")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def probability_bars(p, class_names=None, true: int | None = None, base: str = "kd", ax=None,
                     title: str | None = None, ylim: float = 1.02, rotation: float = 0):
    """One probability vector ``p`` (C,) as bars on ``ax``: the ``true`` class (e.g. the label)
    in ``COLORS["true"]``, the others in ``base`` (a method name or a colour, see
    :func:`class_colors`), the class names as ticks, y from 0 to ``ylim``. Returns the Axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    q = torch.as_tensor(p, dtype=torch.float64).detach().cpu().flatten().numpy()
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(q))]
    ax.bar(np.arange(len(q)), q, color=class_colors(len(q), true, base=base))
    ax.set_xticks(np.arange(len(q)), names, rotation=rotation)
    ax.set_ylim(0, ylim)
    ax.grid(axis="x", visible=False)
    if title:
        ax.set_title(title)
    return ax


def errorbar_lines(summary, x: str, group: str = "method", ax=None, value: str = "mean",
                   err: str = "std", scale: float = 100.0, ylabel: str = "test accuracy (%)",
                   legend: bool = True, dodge: float = 0.0, styles=None):
    """Mean ± std lines, one per ``group`` value, from a :func:`skdtutor.stats.seed_summary`
    table, each in its method's colour, line style and marker (:func:`method_style`).
    ``dodge`` shifts the k-th of n lines by the factor ``1 + dodge * (k - (n - 1) / 2)`` along x
    (for log axes), so that error bars do not overlap. ``styles`` (``{group value: errorbar
    keywords}``) replaces the method styles; its order is then the drawing (and legend) order
    and groups missing from it are not drawn. Returns the Axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    groups = list(summary.groupby(group, sort=False))
    if styles is not None:
        found = dict(groups)
        groups = [(name, found[name]) for name in styles if name in found]
    for k, (name, part) in enumerate(groups):
        part = part.sort_values(x)
        xs = part[x].to_numpy()
        if dodge:
            xs = xs.astype(float) * (1 + dodge * (k - (len(groups) - 1) / 2))
        ax.errorbar(xs, part[value].to_numpy(dtype=float) * scale,
                    yerr=part[err].fillna(0).to_numpy(dtype=float) * scale, capsize=3,
                    label=str(name), **(method_style(str(name)) if styles is None else styles[name]))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    return ax


def show_input(x, ax=None, title: str | None = None):
    """Draw one input sample on ``ax``: an image ``(C, H, W)`` (grey for one channel) or a
    1-D signal ``(C, L)`` (one line per channel, e.g. MNIST-1D). Ticks are hidden for images.
    Returns the Axes."""
    import matplotlib.pyplot as plt

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


def kd_pipeline(ax=None):
    """Schematic of the KD objective, boxes and arrows at the column's width: the frozen teacher's
    and the student's logits softened by ``T`` feed ``T² KL``, the student's plain softmax and the
    label feed the cross-entropy, and ``γ`` mixes the two. Colours as everywhere: teacher brown,
    the distillation path KD blue, the label path CE grey, the label the true-class colour.
    Returns the Figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize("one", height=2.7))
    ax.set(xlim=(-0.3, 10.05), ylim=(-0.75, 5.35))
    ax.axis("off")
    box = {}

    def node(key, xy, text, color):
        box[key] = ax.text(*xy, text, ha="center", va="center", fontsize=9, color="#222", zorder=3,
                           bbox={"boxstyle": "round,pad=0.45", "fc": color + "26", "ec": color, "lw": 1.4})

    def arrow(a, b, color, label=None, above=True):
        ann = ax.annotate("", xy=(0, 0.5), xycoords=box[b], xytext=(1, 0.5), textcoords=box[a], zorder=2,
                          arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.3, "shrinkA": 2, "shrinkB": 2})
        if label:
            ax.annotate(label, xy=(0.5, 0.5), xycoords=ann.arrow_patch, fontsize=9, color=color,
                        ha="left", va="bottom" if above else "top",
                        xytext=(6, 4) if above else (6, -4), textcoords="offset points")

    c = COLORS
    node("x", (0.55, 2.6), "input\n$x$", c["ce"])
    node("teacher", (2.2, 4.6), "teacher\n(frozen)", c["teacher"])
    node("student", (2.2, 1.6), "student", c["kd"])
    node("pt", (4.7, 4.6), "soften by $T$\n$p^t = \\mathrm{softmax}(t/T)$", c["teacher"])
    node("ps", (4.7, 2.9), "soften by $T$\n$p^s = \\mathrm{softmax}(s/T)$", c["kd"])
    node("p1", (4.7, 1.2), "$\\mathrm{softmax}(s)$", c["ce"])
    node("y", (4.7, -0.1), "label $y$", c["true"])
    node("kl", (7.1, 3.75), "$T^2\\,\\mathrm{KL}(p^t \\,\\|\\, p^s)$", c["kd"])
    node("ce", (7.1, 0.55), "$-\\log p^s_y(1)$\n(CE)", c["ce"])
    node("mix", (9.3, 2.15), "loss\n$\\mathcal{L}$", c["kd"])
    for a, b, col in (("x", "teacher", c["teacher"]), ("x", "student", c["kd"]), ("teacher", "pt", c["teacher"]),
                      ("student", "ps", c["kd"]), ("student", "p1", c["ce"]), ("pt", "kl", c["teacher"]),
                      ("ps", "kl", c["kd"]), ("p1", "ce", c["ce"]), ("y", "ce", c["true"])):
        arrow(a, b, col)
    arrow("kl", "mix", c["kd"], "$\\times\\,\\gamma$")
    arrow("ce", "mix", c["ce"], "$\\times\\,(1-\\gamma)$", above=False)
    ax.figure.subplots_adjust(left=0.015, right=0.985, bottom=0.04, top=0.96)  # + the 0.1 in pad: the column
    return ax.figure


def finish(fig, legend: bool = True, **legend_kwargs) -> None:
    """The end of a figure cell: ``fig.tight_layout()``, then (with ``legend``) one
    :func:`legend_outside` legend for all its axes (``legend_kwargs``: ``where``, ``ncol``, ...),
    then ``plt.show()``. Returns None, so the cell shows the figure and nothing else."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    if legend:
        legend_outside(fig, **legend_kwargs)
    plt.show()
