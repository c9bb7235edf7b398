"""skdtutor.figures: the regime-map gain panels against the summary they are drawn from."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from skdtutor import figures, style

matplotlib.use("Agg")


def _summary():
    rows = []
    for name, params in (("a", [5000, 800, 60000]), ("b", [1500, 90000])):
        for k, p in enumerate(params):
            rows.append(dict(dataset=name, axis="size", params=p, fraction=1.0, ce_std=0.01 * (k + 1),
                             kd_gain=0.02 * k - 0.01, kd_std=0.005, skd_gain=0.03 * k, skd_std=0.004 * (k + 1)))
    for f in (0.5, 0.1, 1.0):
        rows.append(dict(dataset="b", axis="fraction", params=1500, fraction=f, ce_std=0.02,
                         kd_gain=f / 10, kd_std=0.01, skd_gain=f / 5, skd_std=0.01))
    return pd.DataFrame(rows)


def test_gain_panel_draws_gains_and_band_sorted_in_points():
    import matplotlib.pyplot as plt

    s = _summary()
    part = s[(s.dataset == "a") & (s.axis == "size")]
    fig, ax = plt.subplots()
    try:
        figures.gain_panel(ax, part)
        order = np.argsort(part["params"].to_numpy())
        xs = part["params"].to_numpy(dtype=float)[order]
        bars = {c.get_label(): c for c in ax.containers}
        for m in ("kd", "skd"):
            line = bars[f"best {m.upper()} − CE, ± std"].lines[0]
            np.testing.assert_allclose(line.get_xdata(), xs)
            np.testing.assert_allclose(line.get_ydata(), 100 * part[f"{m}_gain"].to_numpy()[order])
            assert line.get_color() == style.method_style(m)["color"]
        ce = [l for l in ax.get_lines() if l.get_label() == "CE (labels only) ± std"]
        np.testing.assert_allclose(ce[0].get_ydata(), 0)
        band = ax.collections[0].get_paths()[0].vertices
        assert band[:, 1].max() == pytest.approx(100 * part["ce_std"].max())
        assert band[:, 1].min() == pytest.approx(-100 * part["ce_std"].max())
        assert ax.get_xscale() == "log"
    finally:
        plt.close(fig)


def test_regime_gains_one_panel_per_dataset_and_percent_ticks(tmp_path):
    import matplotlib.pyplot as plt

    s = _summary()
    fig = figures.regime_gains(s, "size")
    try:
        assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
        assert fig.axes[0].get_ylabel() and fig.axes[0].get_xlabel() == figures.AXIS_LABELS["size"]
        assert len(fig.legends) == 1
        assert fig.get_size_inches()[0] == pytest.approx(style.figsize("grid")[0])
    finally:
        plt.close(fig)
    fig = figures.regime_gains(s, "fraction")
    try:
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.get_xticklabels()] == ["10%", "50%", "100%"]
    finally:
        plt.close(fig)
    with pytest.raises(ValueError):
        figures.regime_gains(s, "teacher")
