"""skdtutor.viz and skdtutor.style: the figure style, the plotting helpers and glue.

The explorer's markup is tested in tests/test_explorer.py, its behaviour in a browser in
tests/test_browser.py.
"""
from __future__ import annotations

import sys
import types

import matplotlib
import numpy as np
import pytest
import torch

from skdtutor import explorer, explorer_panel, viz

matplotlib.use("Agg")

Z = [2.0, 1.0, 0.1, -1.0]
NAMES = ["cat", "dog", "car", "ship"]


from reference import softmax  # noqa: E402  (independent NumPy reference)


# ----------------------------------------------------------------------------- figures and glue

def test_temperature_grid_returns_a_figure():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = viz.temperature_grid(Z, (1, 4), class_names=NAMES, title="t", highlight=0)
    try:
        assert isinstance(fig, Figure) and len(fig.axes) == 2
        heights = [p.get_height() for p in fig.axes[1].patches]
        np.testing.assert_allclose(heights, softmax(Z, 4), atol=1e-12)
    finally:
        plt.close(fig)


def test_glue_falls_back_without_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)     # `from myst_nb import glue` raises ImportError
    shown = []
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda v: shown.append(v))
    assert viz.glue("ch0_x", 1.5) == 1.5 and shown == []
    assert viz.glue("ch0_y", 2.5, display=True) == 2.5 and shown == [2.5]


def test_glue_uses_myst_nb_when_present(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=False: calls.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert viz.glue("ch0_z", 3, display=False) == 3
    assert calls == [("ch0_z", 3, False)]


def test_glue_converts_one_element_values_and_glues_words_as_markdown(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=False: calls.append((name, value))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    viz.glue("a", np.float64(0.25))
    viz.glue("b", torch.tensor([3.5]))
    viz.glue("c", np.array([[7]]))
    assert [(n, v, type(v)) for n, v in calls] == [("a", 0.25, float), ("b", 3.5, float), ("c", 7, int)]
    viz.glue_words("d", "both datasets")
    name, value = calls[-1]
    assert name == "d" and value._repr_markdown_() == "both datasets"


def test_glue_all_prefixes_every_key_and_glues_words_as_markdown(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=False: calls.append((name, value))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    out = viz.glue_all("ch0_", {"x": np.float64(1.5), "n": torch.tensor(4)})
    assert calls == [("ch0_x", 1.5), ("ch0_n", 4)] and out == {"ch0_x": 1.5, "ch0_n": 4}
    viz.glue_all("ch0_", {"w": "better"}, words=True)
    assert calls[-1][0] == "ch0_w" and calls[-1][1]._repr_markdown_() == "better"


# ----------------------------------------------------------------------------- the figure style

def _lab(hex_color: str) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour, for a perceptual distance (CIE76 delta E)."""
    rgb = np.array([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ rgb
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_one_colour_per_concept_and_distinct():
    from skdtutor.losses import METHODS

    concepts = ["true", "other", "ce", "kd", "skd", "dice", "kd@dice", "teacher"]
    assert set(concepts) <= set(viz.COLORS)
    # Methods: exactly those of the package (plus the two-stage kd@dice) and the teacher.
    assert set(viz.METHOD_COLORS) == set(METHODS) | {"kd@dice", "teacher"}
    assert set(viz.METHOD_STYLES) == set(viz.METHOD_COLORS)
    colours = [viz.COLORS[c].lower() for c in concepts]
    assert len(set(colours)) == len(colours), "two concepts share a colour"
    for i, a in enumerate(concepts):
        for b in concepts[i + 1:]:
            d = np.linalg.norm(_lab(viz.COLORS[a]) - _lab(viz.COLORS[b]))
            assert d > 20, f"{a} and {b} look alike (delta E {d:.0f})"
    # The highlighted class is the true class, in explorers and static figures alike.
    assert viz.COLORS["highlight"] == viz.COLORS["true"] == explorer_panel.HIGHLIGHT
    # SKD is not red (red-orange means the true class) and KD/SKD panels use the method colours.
    html = viz.softmax_explorer(Z, NAMES, multiplier=2.0, highlight=1).html()
    assert f'data-panel="raw" data-color="{viz.COLORS["kd"]}"' in html
    assert f'data-panel="spherical" data-color="{viz.COLORS["skd"]}"' in html
    assert f"background:{viz.COLORS['true']}" in html
    assert viz.method_color("KD@dice-T") == viz.COLORS["kd@dice"]
    assert viz.method_color("no-such-method") not in colours


def test_methods_with_similar_roles_differ_in_line_style():
    styles = {m: viz.method_style(m) for m in viz.METHOD_COLORS}
    lines = [(s["ls"], s["marker"]) for s in styles.values()]
    assert len(set(lines)) == len(lines)
    assert styles["skd"]["ls"] != styles["kd"]["ls"]
    # overrides replace or add keys, the rest of the method's style stays
    plain = viz.method_style("skd", marker=None, lw=2)
    assert plain == {**styles["skd"], "marker": None, "lw": 2}


@pytest.mark.parametrize("kind, rows", [("one", 1), ("two", 1), ("grid", 1), ("grid", 3)])
def test_figsize_fonts_read_at_column_width(kind, rows):
    """A figure of viz.figsize, shown in the 688 px column: every font >= 9 px as displayed."""
    import matplotlib.pyplot as plt

    viz.set_style()
    width_in, height_in = viz.figsize(kind, rows=rows)
    assert height_in > 0
    png_px = width_in * plt.rcParams["figure.dpi"]
    scale = min(1.0, 688 / png_px)                     # the theme scales wider images down
    assert png_px == pytest.approx(688, abs=1)
    from matplotlib.font_manager import FontProperties
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize", "figure.titlesize"):
        points = FontProperties(size=plt.rcParams[key]).get_size_in_points()
        shown = points * plt.rcParams["figure.dpi"] / 72 * scale
        assert shown >= 9, f"{key}: {shown:.1f} px at column width"


@pytest.mark.parametrize("bad", [{"kind": "huge"}, {"rows": 0}, {"rows": 1.5}, {"height": -1.0}])
def test_figsize_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        viz.figsize(**bad)


def test_legend_below_keeps_the_column_width_and_covers_no_axes(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    viz.set_style()
    fig, axes = plt.subplots(1, 2, figsize=viz.figsize("two"))
    for ax in axes:
        for m in ("kd", "skd", "dice"):
            ax.plot([1, 2, 4], [1, 2, 3], label=m, **viz.method_style(m))
        ax.legend()
    fig.tight_layout()
    legend = viz.legend_outside(fig)
    try:
        assert all(ax.get_legend() is None for ax in axes)
        assert [t.get_text() for t in legend.get_texts()] == ["kd", "skd", "dice"]   # each label once
        fig.savefig(tmp_path / "f.png")                   # savefig.bbox = tight (set_style)
        fig.canvas.draw()
        box = legend.get_window_extent()
        for ax in axes:
            assert not box.overlaps(ax.get_window_extent()), "the legend covers an axes"
        width = Image.open(tmp_path / "f.png").size[0]
        assert width <= 700, f"{width} px: wider than the column"
    finally:
        plt.close(fig)


def test_ce_band_draws_mean_and_band_and_validates():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        line = viz.ce_band(ax, 0.8, 0.02, scale=100)
        assert line.get_ydata()[0] == pytest.approx(80.0) and line.get_color() == viz.COLORS["ce"]
        band = ax.patches[0]
        assert band.get_y() == pytest.approx(78.0) and band.get_y() + band.get_height() == pytest.approx(82.0)
        assert line.get_label() == "CE (labels only)"
        for mean, std in ((float("nan"), 1.0), (1.0, float("nan")), (1.0, -1.0)):
            with pytest.raises(ValueError):
                viz.ce_band(ax, mean, std)
    finally:
        plt.close(fig)


def test_errorbar_lines_use_the_method_styles():
    import matplotlib.pyplot as plt
    import pandas as pd

    summary = pd.DataFrame({"method": ["kd", "kd", "skd", "skd"], "T": [1, 4, 1, 4],
                            "mean": [0.8, 0.82, 0.79, 0.85], "std": [0.01, 0.02, 0.01, np.nan]})
    fig, ax = plt.subplots()
    try:
        viz.errorbar_lines(summary, x="T", ax=ax, dodge=0.04)
        lines = {l.get_label(): l for l in ax.get_lines() if not l.get_label().startswith("_")}
        if not lines:   # errorbar containers: the data line is the first line of each container
            lines = {c.get_label(): c.lines[0] for c in ax.containers}
        assert lines["skd"].get_color() == viz.COLORS["skd"] and lines["skd"].get_linestyle() == "--"
        assert lines["kd"].get_marker() == "o"
        np.testing.assert_allclose(np.asarray(lines["kd"].get_xdata(), float), [0.98, 3.92])
    finally:
        plt.close(fig)


def test_temperature_grid_highlights_the_true_class_and_fits_the_column():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    viz.set_style()
    fig = viz.temperature_grid(Z, (1, 2, 4, 8), class_names=NAMES, highlight=2)
    try:
        assert fig.get_figwidth() * fig.dpi == pytest.approx(688, abs=1)
        colours = [to_hex(p.get_facecolor()).lower() for p in fig.axes[0].patches]
        assert colours[2] == viz.COLORS["true"].lower()
        assert set(colours[:2] + colours[3:]) == {viz.COLORS["kd"].lower()}
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="temperature"):
        viz.temperature_grid(Z, (1, 0))


def test_class_colors():
    assert viz.class_colors(3, 1) == [viz.COLORS["other"], viz.COLORS["true"], viz.COLORS["other"]]
    assert viz.class_colors(2, None, base="skd") == [viz.COLORS["skd"]] * 2
    with pytest.raises(ValueError):
        viz.class_colors(3, 3)


def test_kd_pipeline_names_every_term_and_fits_the_column(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    viz.set_style()
    fig = viz.kd_pipeline()
    try:
        texts = " ".join(t.get_text() for t in fig.axes[0].texts)
        for part in ("teacher", "student", "soften by $T$", "KL", "CE", "label $y$", "\\gamma", "(1-\\gamma)"):
            assert part in texts, part
        # Boxes: teacher in the teacher's colour, the label in the true-class colour.
        edge = {t.get_text().split("\n")[0]: matplotlib.colors.to_hex(t.get_bbox_patch().get_edgecolor())
                for t in fig.axes[0].texts if t.get_bbox_patch() is not None}
        assert edge["teacher"] == viz.COLORS["teacher"].lower() and edge["label $y$"] == viz.COLORS["true"].lower()
        arrows = [a for a in fig.axes[0].texts if getattr(a, "arrow_patch", None) is not None]
        assert len(arrows) == 11
        fig.savefig(tmp_path / "kd.png")
        width, _ = Image.open(tmp_path / "kd.png").size
        assert viz.COLUMN_PX - 20 <= width <= viz.COLUMN_PX
    finally:
        plt.close(fig)


def test_errorbar_lines_styles_replace_the_method_styles_and_fix_the_order():
    import matplotlib.pyplot as plt
    import pandas as pd

    summary = pd.DataFrame({"variant": ["a", "a", "b", "b", "c"], "f": [1, 2, 1, 2, 1],
                            "mean": [0.5, 0.6, 0.7, 0.8, 0.9], "std": [0.1, 0.1, 0.0, 0.0, 0.0]})
    styles = {"b": {"color": "#123456", "ls": ":", "marker": "^"}, "a": {"color": "#654321"}}
    fig, ax = plt.subplots()
    try:
        viz.errorbar_lines(summary, x="f", group="variant", ax=ax, legend=False, styles=styles)
        labels = [c.get_label() for c in ax.containers]
        assert labels == ["b", "a"]  # the order of styles; "c" is not drawn
        b = ax.containers[0].lines[0]
        assert b.get_color() == "#123456" and b.get_linestyle() == ":" and b.get_marker() == "^"
        np.testing.assert_allclose(np.asarray(b.get_ydata(), float), [70.0, 80.0])
    finally:
        plt.close(fig)


def test_probability_bars_marks_the_true_class_and_draws_p():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    p = softmax(np.asarray(Z) / 2.0)
    fig, ax = plt.subplots()
    try:
        viz.probability_bars(torch.tensor(p), NAMES, true=1, base="skd", ax=ax, title="x")
        heights = [b.get_height() for b in ax.patches]
        np.testing.assert_allclose(heights, p, rtol=1e-12)
        colours = [to_hex(b.get_facecolor()).lower() for b in ax.patches]
        assert colours[1] == viz.COLORS["true"].lower()
        assert set(colours[:1] + colours[2:]) == {viz.COLORS["skd"].lower()}
        assert [t.get_text() for t in ax.get_xticklabels()] == NAMES and ax.get_title() == "x"
        assert ax.get_ylim() == pytest.approx((0, 1.02))
    finally:
        plt.close(fig)


def test_finish_lays_out_puts_one_legend_below_and_shows(monkeypatch):
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    viz.set_style()
    fig, axes = plt.subplots(1, 2, figsize=viz.figsize("two"))
    fig2, ax2 = plt.subplots()
    try:
        for ax in axes:
            ax.plot([1, 2], [1, 2], label="kd", **viz.method_style("kd"))
            ax.legend()
        assert viz.finish(fig, ncol=1) is None and shown == [True]
        assert all(ax.get_legend() is None for ax in axes)
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == ["kd"] and legend._ncols == 1
        ax2.plot([1, 2], [1, 2], label="kd")
        viz.finish(fig2, legend=False)
        assert fig2.legends == [] and shown == [True, True]
    finally:
        plt.close(fig)
        plt.close(fig2)



def test_glue_table_glues_every_cell_by_row_and_column(monkeypatch):
    import pandas as pd

    glued = {}
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=False: glued.setdefault(name, value)
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    table = pd.DataFrame({"gap": [1.5, np.nan], "n": [3, 4]}, index=["digits", "mnist1d"])
    out = viz.glue_table("ch0_", table)
    assert glued == out == {"ch0_digits_gap": 1.5, "ch0_digits_n": 3, "ch0_mnist1d_n": 4}
    assert all(isinstance(out[k], int) for k in ("ch0_digits_n", "ch0_mnist1d_n"))  # ':d' formats them
    viz.glue_table("ch0_", pd.DataFrame({"w": ["grows"]}, index=["digits"]), words=True)
    assert glued["ch0_digits_w"].data == "grows"


def test_checked_index_accepts_integers_in_range_and_names_the_problem():
    import numpy as np

    from skdtutor.style import checked_index

    assert checked_index(np.int64(2), 3) == 2 and checked_index(0, 1) == 0
    for bad, message in ((3, "outside the rows"), (-1, "outside the rows"), (1.0, "row index"),
                         ("0", "row index")):
        with pytest.raises(ValueError, match=message):
            checked_index(bad, 3)
