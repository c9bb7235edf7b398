"""skdtutor.viz: the kernel-free softmax explorer's markup (no browser) and the figure helpers.

The explorer's behaviour in a real browser is tested in tests/test_browser.py.
"""
from __future__ import annotations

import json
import re
import sys
import types

import matplotlib
import numpy as np
import pytest
import torch

from skdtutor import viz

matplotlib.use("Agg")

Z = [2.0, 1.0, 0.1, -1.0]
NAMES = ["cat", "dog", "car", "ship"]


from reference import softmax, sphere  # noqa: E402  (independent NumPy reference)


def spec_of(html: str) -> dict:
    """The JSON data island the script reads."""
    found = re.findall(r'<script type="application/json" class="skd-spec">(.*?)</script>', html, re.S)
    assert len(found) == 1
    return json.loads(found[0])


def static_probs(html: str, panel: str) -> np.ndarray:
    """The data-prob values of one panel's bars in the static (pre-script) drawing."""
    part = html.split(f'data-panel="{panel}"', 1)[1].split('class="skd-panel"', 1)[0]
    return np.array([float(p) for p in re.findall(r'class="skd-bar" data-class="\d+" data-prob="([^"]+)"', part)])


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("logits", [
    [1.0],                                   # one class
    [[[1.0, 2.0]]],                          # 3-D
    [1.0, float("nan"), 0.0],                # NaN
    [1.0, float("inf"), 0.0],                # inf
    np.zeros((0, 3)),                        # no rows
], ids=["one-class", "3d", "nan", "inf", "no-rows"])
def test_bad_logits_raise(logits):
    with pytest.raises(ValueError):
        viz.softmax_explorer(logits)


@pytest.mark.parametrize("kwargs", [
    {"t_range": (0.0, 4.0)},
    {"t_range": (-1.0, 4.0)},
    {"t_range": (4.0, 1.0)},
    {"t_range": (2.0, 2.0)},
    {"t_range": (1.0, float("nan"))},
    {"t_range": 4.0},
    {"t_range": (1.0, 2.0, 3.0)},
    {"temperature": 64.0},                   # outside the default range (0.25, 32)
    {"temperature": 0.1},
    {"temperature": True},
    {"temperature": float("nan")},
    {"multiplier": 0.1},                     # outside the default m_range (0.5, 6)
    {"multiplier": 10.0},
    {"m_range": (3.0, 1.0)},
    {"highlight": 4},                        # 4 classes: indices 0..3
    {"highlight": -1},
    {"highlight": [0, 1]},                   # one row, two entries
    {"labels": ["a", "b"]},                  # one row, two labels
    {"width": 50},
    {"highlight": 1.5},                      # not an index
    {"temperature": "2"},
], ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError):
        viz.softmax_explorer(Z, NAMES, **kwargs)


@pytest.mark.parametrize("names", [["a", "b", "c"], ["a", "b", "c", "d", "e"]])
def test_mismatched_class_names_raise(names):
    with pytest.raises(ValueError, match="class names"):
        viz.softmax_explorer(Z, names)


def test_accepts_lists_arrays_and_tensors_with_grad():
    t = torch.tensor([Z, Z[::-1]], requires_grad=True)
    for logits in (Z, np.array(Z), t, t * 2):
        html = viz.softmax_explorer(logits, NAMES).html()
        assert 'class="skd-explorer"' in html
    explorer = viz.softmax_explorer(t, NAMES, highlight=np.int64(2))
    assert explorer.logits.shape == (2, 4) and explorer.highlight == [2, 2]


def test_tensor_labels_highlight_and_temperature_from_a_real_pipeline():
    """What a chapter passes after a forward pass: tensors everywhere."""
    y = torch.tensor([3, 1])
    explorer = viz.softmax_explorer(torch.randn(2, 4), np.array(NAMES), labels=y, highlight=y,
                                    temperature=torch.tensor(2.0), multiplier=np.float32(2.5))
    assert explorer.row_labels == ["3", "1"] and explorer.highlight == [3, 1]
    assert explorer.temperature == 2.0 and explorer.multiplier == 2.5
    assert viz.softmax_explorer(Z, highlight=torch.tensor(2)).highlight == [2]


def test_too_many_rows_raise_with_a_hint():
    with pytest.raises(ValueError, match="one or a few samples"):
        viz.softmax_explorer(np.zeros((1000, 10)))


# ----------------------------------------------------------------------------- markup

def test_html_embeds_logits_class_names_and_labels():
    z = np.array([[3.25, -1.5, 0.125, 7.0], [0.1, 0.2, 0.3, 1e-9]])
    explorer = viz.softmax_explorer(z, NAMES, labels=["first", "second"], highlight=[1, None],
                                    temperature=2.0, multiplier=1.5)
    html = explorer.html()
    spec = spec_of(html)
    assert spec["classes"] == NAMES
    assert spec["spherical"] is True
    assert [s["label"] for s in spec["samples"]] == ["first", "second"]
    assert [s["highlight"] for s in spec["samples"]] == [1, None]
    np.testing.assert_array_equal(np.array([s["logits"] for s in spec["samples"]]), z)  # exact round trip
    for name in NAMES + ["first", "second"]:
        assert f">{name}<" in html                     # visible as names / menu entries
    assert not re.findall(r"__[A-Z0-9_]+__", html), "a template placeholder was left unfilled"


def test_static_drawing_matches_softmax():
    """Before (or without) JavaScript the bars already show softmax(z / T0) and the SKD panel."""
    explorer = viz.softmax_explorer(Z, NAMES, temperature=3.0, multiplier=2.5)
    html = explorer.html()
    np.testing.assert_allclose(static_probs(html, "raw"), softmax(Z, 3.0), atol=1e-10)
    np.testing.assert_allclose(static_probs(html, "spherical"), softmax(sphere(Z, 2.5), 3.0), atol=1e-10)
    np.testing.assert_allclose(explorer.probabilities(8.0), softmax(Z, 8.0), atol=1e-12)
    assert 'class="skd-T-value"' in html and ">3.00</output>" in html
    assert "static view at T = 3.00" in html


def test_without_multiplier_there_is_one_panel():
    html = viz.softmax_explorer(Z, NAMES).html()
    assert html.count('class="skd-panel"') == 1 and 'data-panel="spherical"' not in html
    assert spec_of(html)["spherical"] is False


def test_slider_range_is_log_temperature():
    html = viz.softmax_explorer(Z, NAMES, temperature=4.0, t_range=(0.5, 16.0)).html()
    slider = re.search(r'<input class="skd-T"[^>]*>', html).group(0)
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', slider))
    assert float(attrs["min"]) == pytest.approx(np.log10(0.5))
    assert float(attrs["max"]) == pytest.approx(np.log10(16.0))
    assert float(attrs["value"]) == pytest.approx(np.log10(4.0), abs=1e-15)
    assert attrs["step"] == "any"                       # no snapping away from the initial T


def test_ids_are_unique_per_explorer_and_per_rendering():
    a, b = viz.softmax_explorer(Z, NAMES), viz.softmax_explorer(Z, NAMES)
    assert a.element_id != b.element_id
    page = a.html() + b.html() + a.html() + a._repr_html_()   # the same object shown three times
    roots = re.findall(r'<div class="skd-explorer" id="([^"]+)"', page)
    assert len(roots) == 4 and len(set(roots)) == 4
    ids = re.findall(r'<[a-z]+\s[^>]*?\bid="([^"]+)"', page)   # id attributes of tags
    assert len(ids) == len(set(ids)), "duplicate element ids on one page"
    assert a.element_id in roots[0]
    for root in roots:                                  # each script looks up its own root
        assert page.count(f'var id = "{root}"') == 1


def test_markup_is_offline_and_self_contained():
    html = viz.softmax_explorer(np.ones((3, 10)), [f"class {i}" for i in range(10)],
                                labels=list("abc"), multiplier=2.0).html()
    assert not re.search(r"https?://", html), "the explorer must not reference any URL"
    assert not re.search(r"\b(src|href)\s*=", html, re.I), "the explorer must not load files"
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"\bimport\s*\(|fetch\(|XMLHttpRequest|require\(", html)


def test_hostile_names_are_escaped():
    names = ["</script><b>x", "a&b", '"q"', "<!--"]
    html = viz.softmax_explorer(Z, names, title="<i>T</i>", labels=["</script>"]).html()
    assert html.count("</script>") == 2                 # the data island and the script, nothing else
    assert "<b>x" not in html and "<i>T</i>" not in html and "<!--" not in html
    assert spec_of(html)["classes"] == names
    assert spec_of(html)["samples"][0]["label"] == "</script>"


def test_display_paths_need_no_ipywidgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)   # importing it would fail
    explorer = viz.SoftmaxExplorer(Z, NAMES)
    assert explorer._repr_html_().startswith('<div class="skd-explorer"')
    ipy = explorer.to_ipython()
    assert type(ipy).__name__ == "HTML" and 'class="skd-explorer"' in ipy.data
    assert "SoftmaxExplorer: 1 sample(s) x 4 classes" in repr(explorer)


def test_many_classes_hide_printed_values():
    """100 classes cannot print a value over every bar; the names go too."""
    html = viz.softmax_explorer(np.linspace(-3, 3, 100)).html()
    assert html.count('class="skd-bar"') == 100
    assert 'class="skd-val" style="font-size:10px;line-height:12px;color:#333;text-align:center;' \
           'overflow:hidden;white-space:nowrap;visibility:hidden;' in html


@pytest.mark.parametrize("T, text", [(0.25, "0.250"), (1.0, "1.00"), (3.98107, "3.98"), (8.0, "8.00"),
                                     (9.999, "10.0"), (32.0, "32.0"), (100.0, "100")])
def test_temperature_text_matches_javascript_toPrecision3(T, text):
    assert viz._fmt_t(T) == text


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


# ----------------------------------------------------------------------------- the figure style

def _tick_values(html: str) -> list[str]:
    return re.findall(r'<datalist id="[^"]+">(.*?)</datalist>', html, re.S)


def test_slider_ticks_and_attributes_are_plain_numbers():
    """The browser ignores <option value="np.float64(-0.6...)">: every tick must parse as a float."""
    html = viz.softmax_explorer(Z, NAMES, temperature=np.float64(2.0), t_range=(np.float64(0.25), 32),
                                multiplier=np.float32(2.0)).html()
    lists = _tick_values(html)
    assert len(lists) == 2
    t_ticks = [float(v) for v in re.findall(r'<option value="([^"]*)">', lists[0])]
    m_ticks = [float(v) for v in re.findall(r'<option value="([^"]*)">', lists[1])]
    np.testing.assert_allclose(t_ticks, np.log10(2.0 ** np.arange(-2, 6)))
    assert m_ticks == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert "np." not in html and "float64" not in html and "tensor(" not in html
    for tag in re.findall(r'<input class="skd-[Tm]"[^>]*>', html):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', tag))
        for key in ("min", "max", "value"):
            float(attrs[key])


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, -1e-9, float("nan"), float("inf"), -float("inf"), True, "2"])
def test_probabilities_reject_nonpositive_or_nonfinite_temperature(bad):
    explorer = viz.softmax_explorer(Z, NAMES)
    with pytest.raises(ValueError, match="temperature"):
        explorer.probabilities(bad)


@pytest.mark.parametrize("bad", [0, -2.0, float("nan"), float("inf")])
def test_probabilities_reject_nonpositive_or_nonfinite_multiplier(bad):
    explorer = viz.softmax_explorer(Z, NAMES)
    with pytest.raises(ValueError, match="multiplier"):
        explorer.probabilities(2.0, multiplier=bad)


@pytest.mark.parametrize("bad", [1, -1, 0.5])
def test_probabilities_reject_a_sample_that_is_not_a_row(bad):
    with pytest.raises(ValueError, match="sample"):
        viz.softmax_explorer(Z, NAMES).probabilities(2.0, sample=bad)


def test_probabilities_accept_numpy_and_tensor_temperatures():
    explorer = viz.softmax_explorer(Z, NAMES)
    for T in (np.float64(3.0), torch.tensor(3.0), 3):
        np.testing.assert_allclose(explorer.probabilities(T), softmax(Z, 3.0), atol=1e-12)
    np.testing.assert_allclose(explorer.probabilities(2.0, multiplier=np.float32(2.5)),
                               softmax(sphere(Z, 2.5), 2.0), atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0, "t_range": (1e-3, 4)}, {"multiplier": -1.0},
                                    {"multiplier": 0.0, "m_range": (1e-3, 4)}])
def test_explorer_rejects_nonpositive_settings(kwargs):
    with pytest.raises(ValueError):
        viz.softmax_explorer(Z, NAMES, **kwargs)


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
    assert viz.COLORS["highlight"] == viz.COLORS["true"] == viz._HIGHLIGHT
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
