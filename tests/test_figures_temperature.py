"""skdtutor.figures: accuracy against T (chapters 3, 4, 6) and the sum-zero plane (chapter 3)."""
from __future__ import annotations


import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from skdtutor import figures, style

matplotlib.use("Agg")


def _runs():
    rng = np.random.default_rng(0)
    rows = [dict(dataset=d, method="ce", T=np.nan, seed=s, test_acc=0.5 + 0.01 * s + 0.1 * k)
            for k, d in enumerate(("b", "a")) for s in range(3)]
    rows += [dict(dataset=d, method=m, T=t, seed=s, test_acc=float(rng.uniform(0.4, 0.9)))
             for d in ("b", "a") for m in ("skd", "kd", "dice") for t in (1.0, 4.0, 16.0)
             for s in range(3)]
    return pd.DataFrame(rows)


def test_accuracy_vs_T_one_panel_per_dataset_means_stds_and_ce_band():
    import matplotlib.pyplot as plt

    runs = _runs()
    fig, panels = figures.accuracy_vs_T(runs, methods=("kd", "skd"), labels={"kd": "KD"}, dodge=0)
    try:
        assert list(panels) == ["b", "a"] and [ax.get_title() for ax in fig.axes] == ["b", "a"]
        assert len(fig.legends) == 1
        ax = panels["a"]
        bars = {c.get_label(): c for c in ax.containers}
        assert set(bars) == {"KD", "skd"}                      # dice not drawn, kd renamed
        for label, method in (("KD", "kd"), ("skd", "skd")):
            part = runs[(runs.dataset == "a") & (runs.method == method)]
            means = part.groupby("T")["test_acc"].mean().sort_index()
            stds = part.groupby("T")["test_acc"].std(ddof=1).sort_index()
            line = bars[label].lines[0]
            np.testing.assert_allclose(line.get_xdata(), means.index)
            np.testing.assert_allclose(line.get_ydata(), 100 * means.to_numpy())
            top = bars[label].lines[2][0].get_segments()
            np.testing.assert_allclose([seg[1, 1] - seg[0, 1] for seg in top], 200 * stds.to_numpy())
            assert line.get_color() == style.method_style(method)["color"]
        ce = runs[(runs.dataset == "a") & (runs.method == "ce")]["test_acc"]
        (ce_line,) = [l for l in ax.get_lines() if l.get_label().startswith("CE")]
        np.testing.assert_allclose(ce_line.get_ydata(), 100 * ce.mean())
        (patch,) = ax.patches                                    # the band, in data units
        band = ax.transData.inverted().transform(patch.get_transform().transform(patch.get_path().vertices))
        assert band[:, 1].max() == pytest.approx(100 * (ce.mean() + ce.std(ddof=1)))
        assert band[:, 1].min() == pytest.approx(100 * (ce.mean() - ce.std(ddof=1)))
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"]
    finally:
        plt.close(fig)


def test_sum_zero_plane_keeps_lengths_and_angles_and_drops_the_mean():
    z = torch.randn(50, 3, dtype=torch.float64)
    xy = figures.sum_zero_plane(z)
    c = z - z.mean(-1, keepdim=True)
    torch.testing.assert_close(xy.norm(dim=-1), c.norm(dim=-1))
    torch.testing.assert_close(xy @ xy.T, c @ c.T)                # all inner products kept
    torch.testing.assert_close(figures.sum_zero_plane(z + 5.0), xy)
    with pytest.raises(ValueError):
        figures.sum_zero_plane(torch.zeros(4, 10))


def test_plane_axes_rays_and_circle_radius():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        figures.plane_axes(ax, ["3", "5", "8"], extent=2.0, labels=True)
        rays = ax.get_lines()
        assert len(rays) == 3 and [t.get_text() for t in ax.texts] == ['"3" wins', '"5" wins', '"8" wins']
        for ray, k in zip(rays, range(3)):   # a ray is where the two other classes tie for the lead
            end = np.array([ray.get_xdata()[1], ray.get_ydata()[1]])
            assert np.hypot(*end) == pytest.approx(2.0)
            corner = figures.sum_zero_plane(torch.eye(3))[k].numpy()
            assert end @ corner == pytest.approx(-2.0 * np.linalg.norm(corner))
        line = figures.circle(ax, 1.5)
        np.testing.assert_allclose(np.hypot(line.get_xdata(), line.get_ydata()), 1.5)
        assert line.get_linestyle() == "--" and line.get_color() == style.method_style("skd")["color"]
        assert ax.get_xlim() == (-2.0, 2.0)
    finally:
        plt.close(fig)


def test_plane_panel_draws_every_point_circle_and_reaches_the_farthest():
    import matplotlib.pyplot as plt

    xy = figures.sum_zero_plane(torch.randn(20, 3, dtype=torch.float64))
    fig, ax = plt.subplots()
    try:
        figures.plane_panel(ax, "abc", [(xy, "raw", "raw"), (xy / 2, "ring", None)],
                            circles=[0.5, 1.0], title="t", pad=1.2)
        assert len(ax.collections) == 2 and ax.get_title() == "t"
        np.testing.assert_allclose(ax.collections[1].get_offsets(), (xy / 2).numpy())
        assert [c.get_label() for c in ax.collections][0] == "raw"
        circles = [l for l in ax.get_lines() if l.get_linestyle() == "--"]
        assert sorted(round(float(np.hypot(l.get_xdata()[0], l.get_ydata()[0])), 6) for l in circles) == [0.5, 1.0]
        far = max(1.0, xy.norm(dim=-1).max().item())
        assert ax.get_xlim()[1] == pytest.approx(1.2 * far)
    finally:
        plt.close(fig)


def test_trajectory_panels_plot_the_columns_and_mark_the_epoch():
    import matplotlib.pyplot as plt

    traj = pd.DataFrame({"epoch": range(5), "length": [1, 3, 5, 6, 9], "cosine": np.linspace(0.2, 1, 5),
                         "rank_corr": np.linspace(0.1, 1, 5), "train_acc": np.linspace(0.5, 1, 5)})
    fig = figures.trajectory_panels(traj, mark=2)
    try:
        ax1, ax2 = fig.axes
        np.testing.assert_allclose(ax1.get_lines()[0].get_ydata(), traj["length"])
        by_label = {l.get_label(): l for l in ax2.get_lines()}
        np.testing.assert_allclose(by_label["training accuracy"].get_ydata(), traj["train_acc"])
        np.testing.assert_allclose(by_label["cosine to final direction"].get_ydata(), traj["cosine"])
        assert all(2 in ax.get_lines()[-1].get_xdata() for ax in (ax1, ax2))   # the mark
        assert len(fig.legends) == 1
        assert "epoch 2" in [t.get_text() for t in fig.legends[0].get_texts()]  # named in the legend
    finally:
        plt.close(fig)


def test_length_histograms_count_every_sample_and_mark_the_radius():
    import matplotlib.pyplot as plt

    lengths, top = torch.rand(300) * 10, torch.rand(300) * 0.9 + 0.1
    fig = figures.length_histograms(lengths, 2.5, top, top / 2 + 0.1, T=4, multiplier=2)
    try:
        ax1, ax2 = fig.axes
        assert sum(p.get_height() for p in ax1.patches) == 300
        assert ax1.get_lines()[0].get_xdata()[0] == 2.5
        assert sum(p.get_height() for p in ax2.patches) == 600     # raw and projected
        assert "T = 4" in ax2.get_xlabel()
        # both SKD styles (the left panel's line, the right panel's bars) are in the one legend
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert any(t.startswith("SKD: sphere") for t in texts) and "SKD: projected soft targets" in texts
    finally:
        plt.close(fig)

