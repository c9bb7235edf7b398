"""The book's recurring figure types, drawn in the style of :mod:`skdtutor.viz`.

* :func:`gain_panel` and :func:`regime_gains`: the regime map's gains of the best KD and SKD
  students over CE (chapter 2), from :mod:`skdtutor.regime`'s summary;
* :func:`accuracy_vs_T`: test accuracy against the temperature, one panel per dataset, one
  mean ± std line per method and the CE student as a band (chapters 3, 4 and 6);
* :func:`sum_zero_plane`, :func:`plane_axes` and :func:`circle`: three-class logit vectors
  drawn in the plane where the three logits sum to zero (the picture of the sphere,
  chapter 3);
* :func:`probability_heatmap`: a matrix of probabilities (examples or true classes by
  classes) with outlined cells, on a linear or a log colour scale (chapter 1).
* :func:`dice_search_terms`: the two terms of a Dice temperature search and their sum
  against the temperature (chapter 4).

matplotlib is imported when a figure is drawn.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from .stats import seed_summary
from .style import COLORS, figsize, method_style
from .viz import ce_band, errorbar_lines, legend_outside

__all__ = ["AXIS_LABELS", "gain_panel", "regime_gains", "accuracy_vs_T", "sum_zero_plane", "plane_axes", "circle",
           "probability_heatmap", "plane_panel", "POINT_STYLES", "trajectory_panels", "length_histograms",
           "dice_search_terms"]


AXIS_LABELS = {"size": "student parameters", "fraction": "share of the training digits"}
_AXIS_COLUMNS = {"size": "params", "fraction": "fraction"}


def gain_panel(ax, part):
    """One regime-map panel: CE at 0 with its seed std as a grey band, and the best KD and SKD
    students' gains over CE ± their seed std (points), against the student's parameters
    (``axis == "size"``) or the share of training data (``"fraction"``), on a log axis.
    ``part`` holds rows of one dataset and one axis. Returns the Axes."""
    x = _AXIS_COLUMNS[part["axis"].iloc[0]]
    part = part.sort_values(x)
    xs = part[x].to_numpy(dtype=float)
    ce = 100 * part["ce_std"].to_numpy(dtype=float)
    ax.fill_between(xs, -ce, ce, color=COLORS["ce"], alpha=0.15, lw=0)
    ax.plot(xs, 0 * xs, color=COLORS["ce"], lw=1.4, label="CE (labels only) ± std")
    for m in ("kd", "skd"):
        ax.errorbar(xs, 100 * part[f"{m}_gain"].to_numpy(dtype=float),
                    yerr=100 * part[f"{m}_std"].to_numpy(dtype=float),
                    label=f"best {m.upper()} − CE, ± std", **method_style(m))
    ax.set_xscale("log")
    return ax


def regime_gains(summary, axis: str = "size"):
    """:func:`gain_panel` for every dataset with rows on ``axis`` (``"size"`` or
    ``"fraction"``), side by side at the column's width, fractions ticked in %, one legend
    below. Returns the Figure."""
    import matplotlib.pyplot as plt

    if axis not in _AXIS_COLUMNS:
        raise ValueError(f"axis must be one of {sorted(_AXIS_COLUMNS)}, got {axis!r}")
    rows = summary[summary["axis"] == axis]
    names = list(dict.fromkeys(rows["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=figsize("grid", height=2.7), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = rows[rows["dataset"] == name]
        gain_panel(ax, part)
        if axis == "fraction":
            fracs = sorted(part["fraction"].astype(float).unique())
            ax.set_xticks(fracs, [f"{f:.0%}" for f in fracs], minor=False)
            ax.minorticks_off()
        ax.set(title=name, xlabel=AXIS_LABELS[axis])
    axes[0][0].set_ylabel("test accuracy gain (points)")
    fig.tight_layout()
    legend_outside(fig, ncol=3)
    return fig


def accuracy_vs_T(runs, methods: Sequence[str] = ("kd", "skd"), by: str = "dataset",
                  labels: Mapping[str, str] | None = None, value: str = "test_acc",
                  dodge: float = 0.06, legend: bool = True):
    """One panel per value of ``by`` (in order of appearance): the mean ± std over the seeds
    of ``value`` (fractions, shown in %) against ``T`` (log-2 axis, ticks at the temperatures
    of the rows) for every method of ``methods`` (:func:`skdtutor.viz.errorbar_lines`), and
    the ``ce`` rows of the panel as a band (:func:`skdtutor.viz.ce_band`).

    ``runs`` has one row per student: columns ``by``, ``method``, ``T``, ``seed`` and
    ``value``. ``labels`` renames methods in the legend (``{"kd": "KD"}``). With ``legend``
    the figure is laid out and gets one legend below it; pass ``legend=False`` to draw more
    and call :func:`skdtutor.viz.legend_outside` yourself. Returns ``(fig, {name: Axes})``.
    """
    import matplotlib.pyplot as plt

    labels = dict(labels or {})
    names = list(dict.fromkeys(runs[by]))
    fig, axes = plt.subplots(1, len(names), figsize=figsize("two" if len(names) > 1 else "one"),
                             squeeze=False)
    panels = dict(zip(names, axes[0]))
    for name, ax in panels.items():
        part = runs[runs[by] == name]
        curves = part[part["method"].isin(methods)]
        summary = seed_summary(curves, by=("method", "T"), value=value)
        order = {m: k for k, m in enumerate(methods)}
        summary = summary.sort_values("method", key=lambda s: s.map(order), kind="stable")
        errorbar_lines(summary, x="T", ax=ax, legend=False, dodge=dodge)
        for container in ax.containers:
            container.set_label(labels.get(container.get_label(), container.get_label()))
        ce = part.loc[part["method"] == "ce", value].to_numpy(dtype=float)
        if len(ce):
            ce_band(ax, ce.mean(), ce.std(ddof=1) if len(ce) > 1 else 0.0, scale=100)
        temps = sorted(curves["T"].astype(float).unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(temps, [f"{t:g}" for t in temps])
        ax.minorticks_off()
        ax.set(xlabel="temperature T", title=str(name),
               ylabel="test accuracy (%)" if ax is axes[0][0] else "")
    if legend:
        fig.tight_layout()
        legend_outside(fig)
    return fig, panels


_PLANE = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=torch.float64)
_PLANE = _PLANE / _PLANE.norm(dim=1, keepdim=True)  # an orthonormal basis of {z : sum z = 0}


def sum_zero_plane(z) -> torch.Tensor:
    """2-D coordinates of three-class logit vectors ``z`` (n, 3): centred (the softmax ignores
    the mean), then written in an orthonormal basis of the plane where the logits sum to zero.
    Lengths and angles of the centred vectors are kept."""
    z = torch.as_tensor(z, dtype=torch.float64)
    if z.dim() != 2 or z.shape[1] != 3:
        raise ValueError(f"sum_zero_plane takes logits of shape (n, 3), got {tuple(z.shape)}")
    return (z - z.mean(-1, keepdim=True)) @ _PLANE.T


def plane_axes(ax, class_names: Sequence, extent: float, labels: bool = False):
    """Axes for :func:`sum_zero_plane` points: square, ``±extent``, no ticks, and the three
    decision boundaries as grey rays from the centre (between two rays one class has the
    largest logit); with ``labels``, ``"c" wins`` written inside each class's region.
    Returns the Axes."""
    corners = sum_zero_plane(torch.eye(3, dtype=torch.float64))  # where a class wins most
    for k, name in enumerate(class_names):
        d = (corners[k] / corners[k].norm()).numpy()
        ax.plot([0, -extent * d[0]], [0, -extent * d[1]], color="0.75", lw=0.8)
        if labels:
            ax.text(*(0.85 * extent * d), f'"{name}" wins', ha="center", fontsize=8, color="0.35")
    ax.set(aspect="equal", xlim=(-extent, extent), ylim=(-extent, extent), xticks=[], yticks=[])
    ax.grid(False)
    ax.spines[:].set_visible(False)
    return ax


def circle(ax, radius: float, method: str = "skd", **style):
    """A circle of ``radius`` around the origin in ``method``'s colour and line style (SKD:
    pink dashed), no markers; ``style`` overrides. Returns the Line2D."""
    a = np.linspace(0, 2 * np.pi, 200)
    kw = {**method_style(method), "marker": None, "lw": 1.1, **style}
    return ax.plot(radius * np.cos(a), radius * np.sin(a), **kw)[0]


def probability_heatmap(ax, probs, class_names: Sequence, row_names: Sequence | None = None,
                        outline: Sequence[int] | None = None, outline_color: str | None = None,
                        log_floor: float | None = None, annotate: bool = False,
                        colorbar: str | None = None):
    """A matrix of probabilities, rows (examples or true classes) by columns (``class_names``),
    as a heat map in blues on ``ax``: linear from 0 to its largest value, or logarithmic from
    ``log_floor`` to 1 (smaller values shown at the floor). NaN cells (a hidden diagonal) stay
    blank. ``outline[r]`` is the column framed in row ``r`` (default colour: the true class's,
    :data:`COLORS`). ``annotate`` writes every value with two decimals; ``colorbar`` is the
    colour bar's label (``None``: no bar). Row ticks: ``row_names`` or none. Returns the image."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    m = torch.as_tensor(probs, dtype=torch.float64).detach().cpu().numpy()
    if m.ndim != 2 or m.shape[1] != len(class_names):
        raise ValueError(f"probs must have shape (rows, {len(class_names)}), got {m.shape}")
    if log_floor is not None and not 0 < log_floor < 1:
        raise ValueError(f"log_floor must be in (0, 1), got {log_floor!r}")
    norm = Normalize(0, np.nanmax(m)) if log_floor is None else LogNorm(log_floor, 1)
    shown = m if log_floor is None else np.clip(m, log_floor, None)
    image = ax.imshow(shown, cmap="Blues", norm=norm, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(m.shape[1]), [str(c) for c in class_names])
    if row_names is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(range(m.shape[0]), [str(r) for r in row_names])
    ax.grid(False)
    if annotate:
        for (r, c), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if norm(v) > 0.6 else "#222")
    for r, c in enumerate([] if outline is None else outline):
        ax.add_patch(Rectangle((int(c) - 0.5, r - 0.5), 1, 1, fill=False, lw=1.5,
                               ec=outline_color or COLORS["true"]))
    if colorbar is not None:
        ax.figure.colorbar(image, ax=ax, label=colorbar)
    return image


POINT_STYLES = {  # the kinds of points of plane_panel
    "raw": {"s": 9, "color": COLORS["kd"]},                              # raw logits (KD)
    "sphere": {"s": 9, "marker": "s", "color": COLORS["skd"], "zorder": 3},  # projected (SKD)
    "ring": {"s": 34, "facecolors": "none", "edgecolors": "0.15", "lw": 0.6, "zorder": 4},
}


def plane_panel(ax, class_names: Sequence, points, circles: Sequence[float] = (),
                labels: bool = False, title: str | None = None, pad: float = 1.1):
    """One picture in the sum-zero plane: :func:`plane_axes` (``labels``: name the class
    regions), a :func:`circle` of every radius of ``circles`` and a scatter of every
    ``(xy, kind, label)`` of ``points`` (``xy`` from :func:`sum_zero_plane`, ``kind`` a key of
    :data:`POINT_STYLES`, ``label`` for the legend or ``None``). The axes reach ``pad`` times
    the farthest point or circle. Returns the Axes."""
    points = [(torch.as_tensor(xy, dtype=torch.float64), kind, label) for xy, kind, label in points]
    far = max([float(r) for r in circles] + [xy.norm(dim=-1).max().item() for xy, _, _ in points])
    plane_axes(ax, class_names, pad * far, labels=labels)
    for r in circles:
        circle(ax, r)
    for xy, kind, label in points:
        ax.scatter(*xy.T.numpy(), label=label, **POINT_STYLES[kind])
    if title:
        ax.set_title(title)
    return ax


def trajectory_panels(trajectory, mark=None):
    """Two panels over a teacher's epochs (column ``epoch``): the mean length of its centred
    logits (``length``), and the ``cosine`` and rank correlation (``rank_corr``) of each
    sample's logits with its final ones beside the training accuracy (``train_acc``); a grey
    dash-dotted line at epoch ``mark``, in the legend. Teacher brown, the accuracy CE grey; one
    legend below. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize("two"))
    ep, brown = trajectory["epoch"], COLORS["teacher"]
    ax1.plot(ep, trajectory["length"], color=brown)
    ax1.set(ylabel=r"mean length $\|z - \bar z\|$", title="Confidence keeps growing")
    for col, color, ls, label in (("cosine", brown, "-", "cosine to final direction"),
                                  ("rank_corr", brown, "--", "rank correlation to final order"),
                                  ("train_acc", COLORS["ce"], ":", "training accuracy")):
        ax2.plot(ep, trajectory[col], color=color, ls=ls, label=label)
    ax2.set(ylabel="similarity / accuracy", ylim=(0, 1.02), title="Direction settles early")
    for ax in (ax1, ax2):
        if mark is not None:  # labelled once: the legend then names it
            ax.axvline(mark, color="0.5", lw=1, ls="-.", label=f"epoch {mark:g}" if ax is ax2 else None)
        ax.set_xlabel("teacher epoch")
    fig.tight_layout()
    legend_outside(fig)
    return fig


def length_histograms(raw_length, radius: float, top_raw, top_sph, T: float, multiplier: float):
    """Two histograms over samples: the lengths of the raw centred logits (KD blue) with the
    one length ``radius`` of every projected vector (SKD pink dashed line), and the top-class
    probability at temperature ``T`` of the raw (``top_raw``) and the projected (``top_sph``)
    soft targets (KD blue, SKD pink bars). Returns the Figure."""
    import matplotlib.pyplot as plt

    as_np = lambda v: torch.as_tensor(v).detach().double().numpy()  # noqa: E731
    kd, skd = COLORS["kd"], {**method_style("skd"), "marker": None, "lw": 2}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize("two"))
    ax1.hist(as_np(raw_length), bins=40, color=kd, alpha=0.8, label="KD: raw teacher logits")
    ax1.axvline(radius, **skd, label=f"SKD: sphere(z, m = {multiplier:g}), every sample")
    ax1.set(xlabel=r"length of centred logits $\|z - \bar z\|$", ylabel="training samples")
    for top, color, label in ((top_raw, kd, None), (top_sph, skd["color"], "SKD: projected soft targets")):
        ax2.hist(as_np(top), bins=np.linspace(0.1, 1, 46), color=color, alpha=0.7, label=label)
    ax2.set(xlabel=f"teacher's top-class probability at T = {T:g}")
    fig.tight_layout()
    legend_outside(fig)
    return fig


DICE_TERMS = {"student_term": ("kd", "S(T): teacher vs CE student"),  # column: (style, label)
              "label_term": ("ce", "L(T): teacher vs labels"), "total": ("dice", "S(T) + L(T)")}


def dice_search_terms(table, ax=None, bold: bool = True):
    """The terms of a :func:`skdtutor.temperature.dice_temperature_search` table against ``T``
    (log-2 axis): the student term in KD's style, the label term in CE's, their sum in Dice's.
    ``bold``: thick lines with markers and legend labels; otherwise thin, faint and unlabelled
    (e.g. the other seeds' searches). Returns the Axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    width = {"lw": 1.8, "ms": 3} if bold else {"lw": 0.7, "alpha": 0.5, "ms": 0}
    for column, (method, label) in DICE_TERMS.items():
        ax.plot(table["T"], table[column], label=label if bold else None, **method_style(method, **width))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("temperature T")
    return ax
