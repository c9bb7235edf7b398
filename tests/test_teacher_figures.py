"""skdtutor.teacher_figures against the tables they draw."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from skdtutor import metrics, style, teacher_figures

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _history(n=6):
    e = np.arange(1, n + 1)
    return pd.DataFrame({"epoch": e, "train_acc": 1 - 0.5 / e, "test_acc": 0.8 - 0.3 / e,
                         "train_loss": 1.0 / e, "test_ece": 0.01 * e})


def test_history_panels_draw_each_column_and_mark():
    h = _history()
    fig = teacher_figures.history_panels(h, {"accuracy (%)": ["train_acc", "test_acc"],
                                             "train loss (log)": ["train_loss"], "ECE": ["test_ece"],
                                             "mean logit norm": ["test_ece"]}, mark=3)
    axes = fig.axes
    assert len(axes) == 6 and not axes[4].axison and not axes[5].axison
    train, test, mark = axes[0].get_lines()
    np.testing.assert_allclose(train.get_ydata(), 100 * h["train_acc"])
    np.testing.assert_allclose(test.get_ydata(), 100 * h["test_acc"])
    assert train.get_linestyle() == "--" and test.get_linestyle() == "-"
    assert list(mark.get_xdata()) == [3, 3]
    assert axes[1].get_yscale() == "log" and axes[2].get_yscale() == "linear"
    assert axes[3].get_yscale() == "linear"  # "logit" is not the word "log"
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), h["test_ece"])
    assert len(fig.legends) == 1
    assert fig.get_size_inches()[0] == pytest.approx(style.figsize("grid")[0])


def test_reliability_panels_bars_are_the_non_empty_bins():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (300,), generator=g)
    logits = {1: 0.5 * torch.randn(300, 4, generator=g), 9: 4 * torch.randn(300, 4, generator=g)}
    fig = teacher_figures.reliability_panels(logits, y, n_bins=10)
    assert len(fig.axes) == 2
    for ax, (e, z) in zip(fig.axes, logits.items()):
        b = metrics.reliability_bins(z, y, n_bins=10)
        b = b[b["count"] > 0]
        np.testing.assert_allclose([p.get_height() for p in ax.patches], b["accuracy"])
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), b["confidence"])
        assert ax.get_title() == f"epoch {e}: ECE {metrics.ece(z, y):.3f}"


def test_ranking_panels_plot_the_columns():
    idx = pd.Index([1, 2, 3], name="epoch")
    mass = pd.DataFrame({"T = 1": [0.3, 0.1, 0.01], "T = 4": [0.6, 0.4, 0.3]}, index=idx)
    same = pd.Series([0.2, 0.7, 1.0], index=idx, name="same runner-up")
    fig = teacher_figures.ranking_panels(mass, same, mark=2)
    a, b = fig.axes
    np.testing.assert_allclose(a.get_lines()[0].get_ydata(), mass["T = 1"])
    np.testing.assert_allclose(a.get_lines()[1].get_ydata(), mass["T = 4"])
    np.testing.assert_allclose(b.get_lines()[0].get_ydata(), same)
    assert a.get_yscale() == "log" and b.get_ylim() == (0, 1.02)


def test_snapshot_students_points_band_and_ticks():
    snap = pd.DataFrame({"teacher": [5, 15, 40], "mean": [0.6, 0.65, 0.62], "std": [0.01, 0.02, 0.0]})
    ce = [0.60, 0.62, 0.61]
    fig = teacher_figures.snapshot_students(snap, ce, "KD (T = 4)", mark=20)
    (ax,) = fig.axes
    (bars,) = ax.containers
    assert bars.get_label() == "KD (T = 4)"
    np.testing.assert_allclose(bars.lines[0].get_ydata(), 100 * snap["mean"])
    np.testing.assert_allclose(list(ax.get_xticks()), snap["teacher"])
    ce_line = [l for l in ax.get_lines() if l.get_label().startswith("CE")][0]
    assert ce_line.get_ydata()[0] == pytest.approx(100 * np.mean(ce))
    band = ax.patches[0]
    assert band.get_height() == pytest.approx(2 * 100 * np.std(ce, ddof=1))

