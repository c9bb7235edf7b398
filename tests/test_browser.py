"""The kernel-free softmax explorer in a real browser (headless Debian Chromium via Playwright).

* Self-contained tests (fast): an explorer's HTML opened from a file, moved with a real mouse
  drag and the keyboard, checked against softmax(z / T) computed here in Python; the same
  HTML inserted the ways JupyterLab, the classic Notebook and Colab insert outputs; the page
  with JavaScript disabled.
* The book test: every rendered page of the built book (fixture ``built_book`` in
  conftest.py, one build per session) that holds explorers, served from 127.0.0.1 with every
  other request blocked; each slider is moved and every bar checked.

Requirements: /usr/bin/chromium (Debian's package; never a downloaded browser) and the
``playwright`` Python package. Without them these tests skip locally and fail under CI=true.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from skdtutor import viz

# Debian's Chromium; SKDTUTOR_CHROMIUM overrides the path (e.g. to check the skip logic).
CHROMIUM = os.environ.get("SKDTUTOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-3          # the tolerance ...
STRICT = 1e-9       # ... and what float64 in both places actually gives (data-prob has 12 digits)
BAR_HEIGHT = 120    # pixels for probability 1 (skdtutor.explorer_panel.BAR_HEIGHT)


def _unavailable() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install -r requirements.txt)"
    return None


UNAVAILABLE = _unavailable()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(UNAVAILABLE is not None and not IN_CI,
                       reason=f"browser test skipped: {UNAVAILABLE} (under CI=true it fails instead)"),
]


# ----------------------------------------------------------------------------- reference maths

from reference import softmax, sphere  # noqa: E402  (independent NumPy reference)


# ----------------------------------------------------------------------------- browser plumbing

@pytest.fixture(scope="module")
def browser():
    if UNAVAILABLE:
        pytest.fail(f"CI=true, but {UNAVAILABLE}; .ci/run installs chromium when it runs as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Tab:
    """A page in a fresh context where only file://, data: and 127.0.0.1 URLs load."""

    def __init__(self, browser, javascript=True):
        self.context = browser.new_context(java_script_enabled=javascript, service_workers="block",
                                           viewport={"width": 1200, "height": 900})
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def _route(self, route):
        url = route.request.url
        parsed = urlparse(url)
        if parsed.scheme in ("file", "data", "blob", "about") or parsed.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser):
    t = Tab(browser)
    yield t
    t.close()


def read_state(frame, index: int) -> dict:
    """Everything the reader sees in the index-th explorer of a page (or frame), plus its
    inputs, read from the DOM. Explorers are addressed by position, not id, so that the same
    markup shown twice (glue with display=True) is checked copy by copy."""
    return frame.evaluate("""i => {
        const r = document.querySelectorAll('.skd-explorer')[i];
        const q = s => r.querySelector(s);
        return {
          id: r.id, spec: q('script.skd-spec').textContent,
          ready: r.getAttribute('data-ready'), error: r.getAttribute('data-error'),
          tValue: q('input.skd-T').value, mValue: q('input.skd-m').value, sample: q('select.skd-sample').value,
          tText: q('.skd-T-value').textContent, mText: q('.skd-m-value').textContent,
          controlsShown: getComputedStyle(q('.skd-controls')).display !== 'none',
          panels: Array.from(r.querySelectorAll('.skd-panel')).map(p => ({
            kind: p.getAttribute('data-panel'),
            probs: Array.from(p.querySelectorAll('.skd-bar')).map(b => b.getAttribute('data-prob')),
            heights: Array.from(p.querySelectorAll('.skd-bar')).map(b => b.getBoundingClientRect().height),
            values: Array.from(p.querySelectorAll('.skd-val')).map(v => v.textContent),
          })),
        };
    }""", index)


def check_state(state: dict) -> np.ndarray:
    """Compare what the explorer shows with softmax computed here from its slider values and
    the logits embedded in the page. Returns the raw-panel probabilities."""
    assert state["ready"] == "1", f"the script of explorer {state['id']} did not run"
    assert state["error"] is None, f"the script of explorer {state['id']} failed: {state['error']}"
    assert state["controlsShown"], "the sliders are still hidden"
    spec = json.loads(state["spec"])
    T = 10 ** float(state["tValue"])
    sample = spec["samples"][int(state["sample"])]
    z = sample["logits"]
    assert float(state["tText"]) == pytest.approx(T, rel=6e-3), "the displayed T is not the slider's T"
    expected = {"raw": softmax(z, T)}
    if spec["spherical"]:
        m = float(state["mValue"])
        assert float(state["mText"]) == pytest.approx(m, abs=6e-3)
        expected["spherical"] = softmax(sphere(z, m), T)
    assert [p["kind"] for p in state["panels"]] == list(expected)
    for panel in state["panels"]:
        want = expected[panel["kind"]]
        got = np.array([float(p) for p in panel["probs"]])
        assert got.shape == want.shape
        where = f"{state['id']}, {panel['kind']} panel at T={T}"
        np.testing.assert_allclose(got, want, atol=TOL, err_msg=where)
        np.testing.assert_allclose(got, want, atol=STRICT, rtol=0, err_msg=where)
        shown = np.array([float(v) for v in panel["values"]])          # the printed labels
        np.testing.assert_allclose(shown, want, atol=0.005 + 1e-9, err_msg=where)
        heights = np.array(panel["heights"])                            # the drawn bars
        np.testing.assert_allclose(heights, np.maximum(1, np.round(want * BAR_HEIGHT)), atol=1.01,
                                   err_msg=where)
    return expected["raw"]


def count_explorers(frame) -> int:
    return frame.locator(".skd-explorer").count()


def wait_ready(frame, n: int | None = None):
    frame.wait_for_function("""n => {
        const roots = document.querySelectorAll('.skd-explorer');
        return roots.length > 0 && (n === null || roots.length === n) &&
               Array.from(roots).every(r => r.getAttribute('data-ready') || r.getAttribute('data-error'));
    }""", arg=n, timeout=15000)


def control(frame, index: int, selector: str):
    return frame.locator(".skd-explorer").nth(index).locator(selector)


def drag_slider(page, slider, fraction: float):
    """A real mouse drag: press on the slider's thumb, move to `fraction` of the track, release.
    ``slider`` is a locator (in the page or in an iframe: the mouse works in page coordinates)."""
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    lo, hi, value = (float(slider.get_attribute("min")), float(slider.get_attribute("max")),
                     float(slider.input_value()))
    thumb = 8  # half of Chromium's default thumb width, in pixels
    x_of = lambda f: box["x"] + thumb + f * (box["width"] - 2 * thumb)  # noqa: E731
    y = box["y"] + box["height"] / 2
    start = (value - lo) / (hi - lo)
    page.mouse.move(x_of(start), y)
    page.mouse.down()
    for step in range(1, 6):  # several moves, as a hand would
        page.mouse.move(x_of(start + step / 5 * (fraction - start)), y)
    page.mouse.up()


def exercise(page, index: int, frame=None) -> int:
    """Move every control of the index-th explorer; check every bar after each move. Returns
    the number of checks made. The other explorers on the page must not change."""
    frame = frame or page
    others = [i for i in range(count_explorers(frame)) if i != index]
    before_others = [read_state(frame, i) for i in others]
    state = read_state(frame, index)
    spec = json.loads(state["spec"])
    check_state(state)
    checks = 1

    def moved(action):
        nonlocal checks
        old = read_state(frame, index)
        action()
        new = read_state(frame, index)
        probs = check_state(new)
        checks += 1
        assert (new["tValue"], new["mValue"], new["sample"]) != (old["tValue"], old["mValue"], old["sample"]), \
            "the control did not move"
        return probs

    slider_t, slider_m = control(frame, index, "input.skd-T"), control(frame, index, "input.skd-m")
    # T: a real drag to the high end, the keyboard to both ends and a few steps, another drag.
    hot = moved(lambda: drag_slider(page, slider_t, 0.95))
    cold = moved(lambda: slider_t.press("Home"))
    assert np.abs(hot - cold).max() > 1e-3 or np.ptp(spec["samples"][0]["logits"]) < 1e-6, \
        "moving T changed nothing"
    moved(lambda: slider_t.press("End"))
    for _ in range(3):
        moved(lambda: slider_t.press("ArrowLeft"))
    moved(lambda: drag_slider(page, slider_t, 0.4))
    if spec["spherical"]:
        moved(lambda: drag_slider(page, slider_m, 0.8))
        moved(lambda: slider_m.press("Home"))
        moved(lambda: slider_m.press("ArrowRight"))
    for i in range(1, min(len(spec["samples"]), 4)):
        moved(lambda: control(frame, index, "select.skd-sample").select_option(str(i)))
    for other, before in zip(others, before_others):
        after = read_state(frame, other)
        assert after["panels"] == before["panels"] and after["tValue"] == before["tValue"], \
            f"moving explorer {index} ({state['id']}) changed explorer {other} ({after['id']})"
    return checks


def assert_no_explorer_errors(t: Tab):
    bad = [e for e in t.errors if "skd" in e.lower()]
    assert not bad, f"console errors from the explorer: {bad}"


# ----------------------------------------------------------------------------- self-contained

def page_html(*explorers) -> str:
    body = "\n".join(e.html() for e in explorers)
    return f"<!doctype html><html><head><meta charset='utf-8'><title>explorer</title></head><body>{body}</body></html>"


@pytest.fixture
def two_explorers():
    rng = np.random.default_rng(0)
    a = viz.softmax_explorer([4.0, 1.5, 0.2, -1.0, 2.5], ["cat", "dog", "car", "ship", "frog"],
                             temperature=1.0, highlight=0, title="toy logits")
    b = viz.softmax_explorer(rng.normal(size=(3, 10)) * 4, [f"c{i}" for i in range(10)],
                             labels=["first", "second", "third"], temperature=4.0, t_range=(0.5, 20),
                             multiplier=2.0, highlight=[1, 2, None], title="three samples, SKD panel")
    return a, b


def test_explorer_file_real_drag_and_keyboard(tab, two_explorers, tmp_path):
    """Two explorers on one page, opened from a file: drag and keys move each, bars follow."""
    path = tmp_path / "explorers.html"
    path.write_text(page_html(*two_explorers))
    tab.page.goto(path.as_uri())
    wait_ready(tab.page, 2)
    assert [read_state(tab.page, i)["id"] for i in range(2)] == [e.element_id for e in two_explorers]
    for index in range(2):
        assert exercise(tab.page, index) >= 6
    # The last drag really moved the thumb: T of the second explorer ended near 40% of its
    # log range (0.5 .. 20).
    t_value = float(control(tab.page, 1, "input.skd-T").input_value())
    assert t_value == pytest.approx(np.log10(0.5) + 0.4 * np.log10(40), abs=0.12)
    assert_no_explorer_errors(tab)
    assert not tab.errors, tab.errors
    assert not tab.blocked, f"the explorer requested {tab.blocked}"


def test_same_markup_twice_on_one_page(tab, two_explorers, tmp_path):
    """glue(..., display=True) shows one output twice (same ids): both copies must work alone."""
    html = two_explorers[1].html()
    path = tmp_path / "twice.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body>{html}<p>text</p>{html}</body>")
    tab.page.goto(path.as_uri())
    wait_ready(tab.page, 2)
    for index in range(2):
        exercise(tab.page, index)
    assert not tab.errors, tab.errors


def test_explorer_extreme_temperatures_and_logits(tab, tmp_path):
    """Huge logit gaps at T = 0.25 (no overflow: the softmax subtracts the max) and T = 32."""
    z = [60.0, -45.0, 0.0, 59.5]
    e = viz.softmax_explorer(z, list("abcd"), temperature=0.25, multiplier=6.0)
    path = tmp_path / "extreme.html"
    path.write_text(page_html(e))
    tab.page.goto(path.as_uri())
    wait_ready(tab.page, 1)
    np.testing.assert_allclose(check_state(read_state(tab.page, 0)), softmax(z, 0.25), atol=TOL)
    control(tab.page, 0, "input.skd-T").press("End")
    np.testing.assert_allclose(check_state(read_state(tab.page, 0)), softmax(z, 32.0), atol=TOL)
    assert not tab.errors, tab.errors


FRONT_ENDS = {
    # JupyterLab / Notebook 7: host.innerHTML = html on an attached node, then every <script>
    # is replaced by a fresh clone so that it runs (rendermime's evalInnerHTMLScriptTags).
    "jupyterlab": """html => {
        const host = document.createElement('div'); document.body.appendChild(host);
        host.innerHTML = html;
        for (const s of Array.from(host.getElementsByTagName('script'))) {
          const c = document.createElement('script');
          for (const a of Array.from(s.attributes)) c.setAttribute(a.name, a.value);
          c.textContent = s.textContent; s.parentNode.replaceChild(c, s);
        }
    }""",
    # The same, but the output node is attached only later: the clones run when connected.
    "jupyterlab-detached": """html => {
        const host = document.createElement('div');
        host.innerHTML = html;
        for (const s of Array.from(host.getElementsByTagName('script'))) {
          const c = document.createElement('script');
          for (const a of Array.from(s.attributes)) c.setAttribute(a.name, a.value);
          c.textContent = s.textContent; s.parentNode.replaceChild(c, s);
        }
        setTimeout(() => document.body.appendChild(host), 100);
    }""",
    # Classic Notebook 6 (jQuery): scripts evaluated globally while the output node may still
    # be detached; the explorer's script retries until its root is in the document.
    "classic-global-eval": """html => {
        const host = document.createElement('div');
        host.innerHTML = html;
        for (const s of Array.from(host.querySelectorAll('script:not([type])'))) (0, eval)(s.textContent);
        setTimeout(() => document.body.appendChild(host), 300);
    }""",
    # Colab: each output lives in its own iframe document.
    "colab-iframe": """html => {
        const f = document.createElement('iframe'); f.id = 'out'; f.style.width = '900px'; f.style.height = '700px';
        f.srcdoc = '<!doctype html><html><body>' + html + '</body></html>';
        document.body.appendChild(f);
    }""",
}


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_explorer_inserted_like_jupyter_front_ends(tab, two_explorers, front_end):
    html = "".join(e.html() for e in two_explorers)
    tab.page.set_content("<!doctype html><html><body><p>notebook</p></body></html>")
    tab.page.evaluate(FRONT_ENDS[front_end], html)
    if front_end == "colab-iframe":
        tab.page.wait_for_selector("iframe#out")
        tab.page.frame_locator("iframe#out").locator(".skd-explorer").first.wait_for()
        frame = next(f for f in tab.page.frames if f != tab.page.main_frame)
    else:
        frame = tab.page
    wait_ready(frame, 2)
    for index in range(2):
        exercise(tab.page, index, frame=frame)
    assert not tab.errors, tab.errors


def test_explorer_without_javascript_shows_the_static_drawing(browser, two_explorers, tmp_path):
    """No JavaScript (untrusted notebook, GitHub's viewer): bars at the initial T and a note;
    the inert sliders stay hidden."""
    path = tmp_path / "nojs.html"
    path.write_text(page_html(*two_explorers))
    t = Tab(browser, javascript=False)
    try:
        t.page.goto(path.as_uri())
        for index, e in enumerate(two_explorers):
            note = control(t.page, index, ".skd-static-note")
            assert note.is_visible() and "static view at T =" in note.inner_text()
            assert not control(t.page, index, ".skd-controls").is_visible()
            bars = control(t.page, index, "[data-panel=raw] .skd-bar")
            probs = [float(p) for p in bars.evaluate_all("bs => bs.map(b => b.getAttribute('data-prob'))")]
            np.testing.assert_allclose(probs, softmax(e.logits[0].numpy(), e.temperature), atol=TOL)
            heights = bars.evaluate_all("bs => bs.map(b => b.getBoundingClientRect().height)")
            assert max(heights) > 10
    finally:
        t.close()


def test_screenshots_at_two_temperatures(tab, two_explorers, tmp_path):
    """Screenshots for a human to look at (and a smoke test that the explorer has a size)."""
    path = tmp_path / "shots.html"
    path.write_text(page_html(*two_explorers))
    tab.page.goto(path.as_uri())
    wait_ready(tab.page, 2)
    out = Path(os.environ.get("SKDTUTOR_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    root = tab.page.locator(".skd-explorer").nth(1)
    for T in (1.0, 8.0):
        root.locator("input.skd-T").evaluate(
            "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", str(np.log10(T)))
        assert float(root.locator(".skd-T-value").inner_text()) == pytest.approx(T, rel=6e-3)
        check_state(read_state(tab.page, 1))
        shot = out / f"explorer_T{T:g}.png"
        root.screenshot(path=str(shot))
        box = root.bounding_box()
        assert box["width"] > 300 and box["height"] > 150 and shot.stat().st_size > 5000


# ----------------------------------------------------------------------------- the built book

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def book_server(built_book):
    """Serve the built book on 127.0.0.1 (never another interface), like a static web host."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Path(built_book)
    server.shutdown()
    server.server_close()


# Chapters that must hold explorers once they exist (the issue: "chapters 1, 3 and 4 at least").
CHAPTERS_WITH_SLIDERS = ("01", "03", "04")


@pytest.mark.book
def test_book_explorers_work_offline(browser, book_server):
    base, html_dir = book_server
    pages = sorted(p for p in html_dir.rglob("*.html")
                   if "_static" not in p.parts and "skd-explorer" in p.read_text(errors="ignore"))
    found: dict[str, int] = {}
    blocked: set[str] = set()
    for path in pages:
        rel = path.relative_to(html_dir).as_posix()
        t = Tab(browser)
        try:
            t.page.goto(f"{base}/{rel}", wait_until="load")
            n = len(re.findall(r'<div class="skd-explorer" id=', path.read_text()))
            if n == 0:
                continue
            wait_ready(t.page, n)
            for index in range(n):
                exercise(t.page, index)
            assert_no_explorer_errors(t)
            found[rel] = n
            blocked.update(t.blocked)
        finally:
            t.close()
    print(f"\nexplorers per page: {found}")
    if blocked:
        print(f"blocked non-local requests (the explorers worked without them): {sorted(blocked)}")
    missing = []
    for number in CHAPTERS_WITH_SLIDERS:
        sources = sorted((ROOT / "book").glob(f"{number}_*.ipynb"))
        if not sources:
            continue  # the chapter has not been written yet
        page = f"book/{sources[0].stem}.html"
        if not found.get(page):
            missing.append(page)
    assert not missing, f"no working temperature explorer on {missing}"
    if not found:
        pytest.skip("no rendered page holds an explorer yet (chapters 1, 3 and 4 are not written)")

