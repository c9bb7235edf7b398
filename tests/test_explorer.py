"""skdtutor.explorer: the kernel-free softmax explorer's markup (no browser).

The explorer's behaviour in a real browser is tested in tests/test_browser.py.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from skdtutor import explorer as ex
from skdtutor import viz

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


def test_viz_reexports_the_explorer():
    """Chapters call viz.softmax_explorer: it is the explorer's own function and class."""
    assert viz.softmax_explorer is ex.softmax_explorer
    assert viz.SoftmaxExplorer is ex.SoftmaxExplorer


def test_explorer_and_viz_import_without_matplotlib():
    """The explorer never imports matplotlib; viz imports it only when a figure is drawn."""
    code = ("import sys; import skdtutor.explorer, skdtutor.viz; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'seaborn', 'ipywidgets')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


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
        ex.softmax_explorer(logits)


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
        ex.softmax_explorer(Z, NAMES, **kwargs)


@pytest.mark.parametrize("names", [["a", "b", "c"], ["a", "b", "c", "d", "e"]])
def test_mismatched_class_names_raise(names):
    with pytest.raises(ValueError, match="class names"):
        ex.softmax_explorer(Z, names)


def test_accepts_lists_arrays_and_tensors_with_grad():
    t = torch.tensor([Z, Z[::-1]], requires_grad=True)
    for logits in (Z, np.array(Z), t, t * 2):
        html = ex.softmax_explorer(logits, NAMES).html()
        assert 'class="skd-explorer"' in html
    explorer = ex.softmax_explorer(t, NAMES, highlight=np.int64(2))
    assert explorer.logits.shape == (2, 4) and explorer.highlight == [2, 2]


def test_tensor_labels_highlight_and_temperature_from_a_real_pipeline():
    """What a chapter passes after a forward pass: tensors everywhere."""
    y = torch.tensor([3, 1])
    explorer = ex.softmax_explorer(torch.randn(2, 4), np.array(NAMES), labels=y, highlight=y,
                                    temperature=torch.tensor(2.0), multiplier=np.float32(2.5))
    assert explorer.row_labels == ["3", "1"] and explorer.highlight == [3, 1]
    assert explorer.temperature == 2.0 and explorer.multiplier == 2.5
    assert ex.softmax_explorer(Z, highlight=torch.tensor(2)).highlight == [2]


def test_too_many_rows_raise_with_a_hint():
    with pytest.raises(ValueError, match="one or a few samples"):
        ex.softmax_explorer(np.zeros((1000, 10)))


# ----------------------------------------------------------------------------- markup

def test_html_embeds_logits_class_names_and_labels():
    z = np.array([[3.25, -1.5, 0.125, 7.0], [0.1, 0.2, 0.3, 1e-9]])
    explorer = ex.softmax_explorer(z, NAMES, labels=["first", "second"], highlight=[1, None],
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
    explorer = ex.softmax_explorer(Z, NAMES, temperature=3.0, multiplier=2.5)
    html = explorer.html()
    np.testing.assert_allclose(static_probs(html, "raw"), softmax(Z, 3.0), atol=1e-10)
    np.testing.assert_allclose(static_probs(html, "spherical"), softmax(sphere(Z, 2.5), 3.0), atol=1e-10)
    np.testing.assert_allclose(explorer.probabilities(8.0), softmax(Z, 8.0), atol=1e-12)
    assert 'class="skd-T-value"' in html and ">3.00</output>" in html
    assert "static view at T = 3.00" in html


def test_without_multiplier_there_is_one_panel():
    html = ex.softmax_explorer(Z, NAMES).html()
    assert html.count('class="skd-panel"') == 1 and 'data-panel="spherical"' not in html
    assert spec_of(html)["spherical"] is False


def test_slider_range_is_log_temperature():
    html = ex.softmax_explorer(Z, NAMES, temperature=4.0, t_range=(0.5, 16.0)).html()
    slider = re.search(r'<input class="skd-T"[^>]*>', html).group(0)
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', slider))
    assert float(attrs["min"]) == pytest.approx(np.log10(0.5))
    assert float(attrs["max"]) == pytest.approx(np.log10(16.0))
    assert float(attrs["value"]) == pytest.approx(np.log10(4.0), abs=1e-15)
    assert attrs["step"] == "any"                       # no snapping away from the initial T


def test_ids_are_unique_per_explorer_and_per_rendering():
    a, b = ex.softmax_explorer(Z, NAMES), ex.softmax_explorer(Z, NAMES)
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
    html = ex.softmax_explorer(np.ones((3, 10)), [f"class {i}" for i in range(10)],
                                labels=list("abc"), multiplier=2.0).html()
    assert not re.search(r"https?://", html), "the explorer must not reference any URL"
    assert not re.search(r"\b(src|href)\s*=", html, re.I), "the explorer must not load files"
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"\bimport\s*\(|fetch\(|XMLHttpRequest|require\(", html)


def test_hostile_names_are_escaped():
    names = ["</script><b>x", "a&b", '"q"', "<!--"]
    html = ex.softmax_explorer(Z, names, title="<i>T</i>", labels=["</script>"]).html()
    assert html.count("</script>") == 2                 # the data island and the script, nothing else
    assert "<b>x" not in html and "<i>T</i>" not in html and "<!--" not in html
    assert spec_of(html)["classes"] == names
    assert spec_of(html)["samples"][0]["label"] == "</script>"


def test_display_paths_need_no_ipywidgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)   # importing it would fail
    explorer = ex.SoftmaxExplorer(Z, NAMES)
    assert explorer._repr_html_().startswith('<div class="skd-explorer"')
    ipy = explorer.to_ipython()
    assert type(ipy).__name__ == "HTML" and 'class="skd-explorer"' in ipy.data
    assert "SoftmaxExplorer: 1 sample(s) x 4 classes" in repr(explorer)


def test_many_classes_hide_printed_values():
    """100 classes cannot print a value over every bar; the names go too."""
    html = ex.softmax_explorer(np.linspace(-3, 3, 100)).html()
    assert html.count('class="skd-bar"') == 100
    assert 'class="skd-val" style="font-size:10px;line-height:12px;color:#333;text-align:center;' \
           'overflow:hidden;white-space:nowrap;visibility:hidden;' in html


@pytest.mark.parametrize("T, text", [(0.25, "0.250"), (1.0, "1.00"), (3.98107, "3.98"), (8.0, "8.00"),
                                     (9.999, "10.0"), (32.0, "32.0"), (100.0, "100")])
def test_temperature_text_matches_javascript_toPrecision3(T, text):
    assert ex._fmt_t(T) == text



def _tick_values(html: str) -> list[str]:
    return re.findall(r'<datalist id="[^"]+">(.*?)</datalist>', html, re.S)


def test_slider_ticks_and_attributes_are_plain_numbers():
    """The browser ignores <option value="np.float64(-0.6...)">: every tick must parse as a float."""
    html = ex.softmax_explorer(Z, NAMES, temperature=np.float64(2.0), t_range=(np.float64(0.25), 32),
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
    explorer = ex.softmax_explorer(Z, NAMES)
    with pytest.raises(ValueError, match="temperature"):
        explorer.probabilities(bad)


@pytest.mark.parametrize("bad", [0, -2.0, float("nan"), float("inf")])
def test_probabilities_reject_nonpositive_or_nonfinite_multiplier(bad):
    explorer = ex.softmax_explorer(Z, NAMES)
    with pytest.raises(ValueError, match="multiplier"):
        explorer.probabilities(2.0, multiplier=bad)


@pytest.mark.parametrize("bad", [1, -1, 0.5])
def test_probabilities_reject_a_sample_that_is_not_a_row(bad):
    with pytest.raises(ValueError, match="sample"):
        ex.softmax_explorer(Z, NAMES).probabilities(2.0, sample=bad)


def test_probabilities_accept_numpy_and_tensor_temperatures():
    explorer = ex.softmax_explorer(Z, NAMES)
    for T in (np.float64(3.0), torch.tensor(3.0), 3):
        np.testing.assert_allclose(explorer.probabilities(T), softmax(Z, 3.0), atol=1e-12)
    np.testing.assert_allclose(explorer.probabilities(2.0, multiplier=np.float32(2.5)),
                               softmax(sphere(Z, 2.5), 2.0), atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0, "t_range": (1e-3, 4)}, {"multiplier": -1.0},
                                    {"multiplier": 0.0, "m_range": (1e-3, 4)}])
def test_explorer_rejects_nonpositive_settings(kwargs):
    with pytest.raises(ValueError):
        ex.softmax_explorer(Z, NAMES, **kwargs)


# ------------------------------------------------------------------ the live explorer
@pytest.fixture(scope="module")
def live_setup():
    import pandas as pd

    from skdtutor import data

    digits = data.load("digits")
    n = len(digits.y_test)
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(n, 10, generator=g) * 3
    students = {1.0: torch.randn(n, 10, generator=g), 4.0: torch.randn(n, 10, generator=g) * 2}
    runs = pd.DataFrame({"method": ["KD"] * 6 + ["ce"] * 3, "T": [1.0] * 3 + [4.0] * 3 + [np.nan] * 3,
                         "seed": [0, 1, 2] * 3,
                         "test_acc": [0.5, 0.6, 0.7, 0.8, 0.81, 0.85, 0.4, 0.41, 0.42]})
    return digits, teacher, students, runs


def test_live_explorer_without_a_kernel_is_the_kernel_free_explorer(live_setup):
    from skdtutor.live import live_explorer

    digits, teacher, students, runs = live_setup
    for kwargs in ({}, {"live": False}):  # no kernel here: the default is the static explorer too
        e = live_explorer(digits, teacher, students, runs=runs, sample=3, temperature=2.0, **kwargs)
        assert isinstance(e, ex.SoftmaxExplorer)
        assert e.logits.shape == (8, 10) and e.multiplier == 2.0
        np.testing.assert_allclose(e.probabilities(temperature=2.0, sample=1),
                                   torch.softmax(teacher[4].double() / 2.0, 0).numpy(), rtol=1e-12)
        assert e.highlight[0] == int(digits.y_test[3])


def test_live_explorer_widget_recomputes_on_every_slider_change(live_setup):
    pytest.importorskip("ipywidgets")
    from skdtutor import losses
    from skdtutor.live import LiveExplorer, live_explorer
    from skdtutor.stats import mean_pm_std

    digits, teacher, students, runs = live_setup
    e = live_explorer(digits, teacher, students, runs=runs, live=True)
    assert isinstance(e, LiveExplorer)
    assert e.image.value[:4] == b"\x89PNG" and "skd-panel" in e.bars.value
    for i, T, m in [(0, 4.0, 2.0), (17, 1.3, 3.5), (200, 0.5, 1.0)]:
        e.sample.value, e.temperature.value, e.multiplier.value = i, T, m
        T, m = e.temperature.value, e.multiplier.value  # what the sliders hold (their step)
        near = 1.0 if abs(np.log(T)) < abs(np.log(T / 4.0)) else 4.0
        for who, z in (("teacher", teacher[i:i + 1]), ("student", students[near][i:i + 1])):
            z = z.double()
            np.testing.assert_allclose(e.shown[who], torch.softmax(z / T, 1)[0].numpy(), rtol=1e-10)
            np.testing.assert_allclose(e.shown[f"{who}_sphere"],
                                       torch.softmax(losses.sphere(z, m) / T, 1)[0].numpy(), rtol=1e-10)
        assert e.shown["student_T"] == near
        acc = runs[(runs["method"] == "KD") & (runs["T"] == near)]["test_acc"]
        assert e.shown["accuracy"].endswith(f"{mean_pm_std(acc.mean(), acc.std())} % over 3 seed(s)")
        assert f"test sample {i}:" in e.info.value
        assert f'data-prob="{e.shown["teacher"][0]:.12g}"' in e.bars.value  # the bars show them


def test_live_explorer_checks_its_inputs(live_setup):
    from skdtutor.live import live_explorer

    digits, teacher, students, _ = live_setup
    with pytest.raises(ValueError, match="test split"):
        live_explorer(digits, teacher[:5])
    with pytest.raises(ValueError, match="outside the test split"):
        live_explorer(digits, teacher, sample=len(digits.y_test))
    with pytest.raises(ValueError, match="t_range"):
        live_explorer(digits, teacher, temperature=100.0, live=True)
