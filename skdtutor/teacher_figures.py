"""Figures of one teacher's training run, epoch by epoch (chapter 2).

:func:`history_panels` draws small multiples of a :func:`skdtutor.teachers.teacher_snapshots`
history (train columns dashed, test solid); :func:`reliability_panels` one reliability
diagram per checkpoint; :func:`ranking_panels` the probability a teacher leaves for the
wrong classes beside how stable its runner-up class is; :func:`snapshot_students` the
students distilled from snapshots of it against the CE student. Teacher brown, a dotted line at an
epoch to ``mark`` (e.g. the first at 100 % training accuracy), one legend below (see
:func:`skdtutor.viz.legend_outside`). Each returns the Figure, laid out, for ``plt.show()``.
matplotlib is imported when a figure is drawn.
"""
from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

from .style import COLORS, figsize

__all__ = ["history_panels", "reliability_panels", "ranking_panels", "snapshot_students"]

_MARK = {"color": "#999", "ls": ":", "lw": 1}


def _finish(fig, ncol: int = 3):
    from .viz import legend_outside

    fig.tight_layout()
    legend_outside(fig, ncol=ncol)
    return fig


def history_panels(history, panels: Mapping[str, Sequence[str]], mark: int | None = None,
                   x: str = "epoch", mark_label: str = "training set fitted"):
    """One panel per ``title: [columns]`` of ``panels`` (three a row), each column of
    ``history`` against ``x``: ``train_*`` columns dashed and lighter, the others solid,
    columns with ``acc`` in their name in %, a log y axis when the title contains the word ``log``
    (``"train loss (log)"``; not ``"mean logit norm"``)."""
    import matplotlib.pyplot as plt

    rows = math.ceil(len(panels) / 3)
    fig, axes = plt.subplots(rows, 3, sharex=True, squeeze=False,
                             figsize=figsize("grid", rows=rows))
    for ax, (title, cols) in zip(axes.flat, panels.items()):
        for col in cols:
            tr = col.startswith("train")
            ax.plot(history[x], history[col] * (100 if "acc" in col else 1), color=COLORS["teacher"],
                    ls="--" if tr else "-", alpha=0.7 if tr else 1.0, label="train" if tr else "test")
        if mark is not None:
            ax.axvline(mark, label=mark_label, **_MARK)
        ax.set(title=title, yscale="log" if re.search(r"\blog\b", title) else "linear")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(f"teacher {x}")
    return _finish(fig)


def reliability_panels(logits: Mapping[int, object], labels, n_bins: int = 10):
    """One reliability diagram per ``epoch: logits`` of ``logits``: per confidence bin
    (:func:`skdtutor.metrics.reliability_bins`, empty bins left out) a bar of the accuracy in
    the bin, a dot at its mean confidence, the diagonal of a calibrated model, and the
    checkpoint's :func:`skdtutor.metrics.ece` in the title."""
    import matplotlib.pyplot as plt

    from .metrics import ece, reliability_bins

    fig, axes = plt.subplots(1, len(logits), sharey=True, squeeze=False,
                             figsize=figsize("grid", height=2.6))
    for ax, (e, z) in zip(axes[0], logits.items()):
        b = reliability_bins(z, labels, n_bins=n_bins)
        b = b[b["count"] > 0]
        ax.bar(b["lower"], b["accuracy"], width=b["upper"] - b["lower"], align="edge",
               color=COLORS["teacher"], alpha=0.55, edgecolor="white", label="accuracy in bin")
        ax.plot((b["lower"] + b["upper"]) / 2, b["confidence"], "o", ms=4, color=COLORS["true"],
                label="mean confidence in bin")
        ax.plot([0, 1], [0, 1], color="#444", ls="--", lw=1, label="calibrated")
        ax.set(title=f"epoch {e}: ECE {ece(z, labels):.3f}", xlabel="confidence", xlim=(0, 1),
               ylim=(0, 1))
    axes[0][0].set_ylabel("accuracy")
    return _finish(fig)


def ranking_panels(mass, same_runner, mark: int | None = None):
    """Left: the columns of ``mass`` (e.g. the mean wrong-class probability at two
    temperatures) against its index, log y, solid then dashed. Right: the series
    ``same_runner`` (the share of inputs whose runner-up class is already the final one)."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=figsize("two"))
    mass.plot(ax=a, logy=True, color=COLORS["teacher"], style=["-", "--", ":", "-."][:mass.shape[1]],
              title="Left for the wrong classes", ylabel="mean probability")
    same_runner.plot(ax=b, color=COLORS["teacher"], ylim=(0, 1.02), title="Stability of the ranking",
                     ylabel="fraction of training inputs")
    for ax in (a, b):
        if mark is not None:
            ax.axvline(mark, **_MARK)
        ax.set_xlabel("teacher epoch")
    return _finish(fig)


def snapshot_students(summary, ce, label: str, mark: int | None = None, x: str = "teacher",
                      method: str = "kd", scale: float = 100.0):
    """Students distilled from a teacher's snapshots: ``summary``'s ``mean`` ± ``std`` (one row
    per snapshot epoch in column ``x``, e.g. :func:`skdtutor.stats.seed_summary`) in
    ``method``'s style, ticked at the snapshot epochs, and the CE students' per-seed
    accuracies ``ce`` as a band (:func:`skdtutor.viz.ce_band`), both times ``scale`` (%)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .style import method_style
    from .viz import ce_band

    ce = np.asarray(ce, dtype=float)
    fig, ax = plt.subplots(figsize=figsize("one", height=2.8))
    ce_band(ax, ce.mean(), ce.std(ddof=1), scale=scale)
    xs, m, s = (summary[c].to_numpy(dtype=float) for c in (x, "mean", "std"))
    ax.errorbar(xs, scale * m, yerr=scale * s, label=label, **method_style(method))
    if mark is not None:
        ax.axvline(mark, label="teacher fits the training set", **_MARK)
    ax.set_xticks(xs, [f"{e:g}" for e in xs])
    ax.set(xlabel="teacher epoch of the snapshot", ylabel="student test accuracy (%)")
    return _finish(fig)
