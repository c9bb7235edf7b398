"""What a reader sees on every page of the built book (fixture ``built_book``, one build per session).

* ``test_no_stray_output`` (HTML only): no cell output that is a bare number, a Python repr
  (``np.float64(...)``, ``tensor(...)``, ``<Figure size ...>``, ``array(...)``) or a lone string,
  no stderr output (warnings), and no repr anywhere in the prose or in the explorer markup.
* ``test_layout_fits_the_column`` (headless Chromium at 1280 px and 800 px): no element wider
  than the content column unless it sits inside its own horizontal scroll box, every slider tick
  mark a number, and a full-page screenshot of every page (in ``$SKDTUTOR_SCREENSHOTS`` when set,
  otherwise in the test's temporary folder; the path is printed).

Iterate against an existing build with ``SKDTUTOR_BOOK_HTML=_build/html pytest tests/test_pages.py``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, IN_CI, UNAVAILABLE, Tab
from test_browser import book_server as served_book  # noqa: F401 (a fixture: the built book on 127.0.0.1)

WIDTHS = (1280, 800)
MIN_SCALE = 0.8   # 8 pt at 100 dpi is 11 px; scaled by 0.8 it is still 9 px

# What a cell's text output may not be, alone.
BARE_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?$|^[-+]?(nan|inf)$", re.I)
LONE_STRING = re.compile(r"""^(['"]).*\1$|^b'.*'$""", re.S)
# Python reprs that never belong on a page (outside the code a cell shows).
REPR = re.compile(r"\bnp\.(float|int|uint|bool|str)(16|32|64|_)?\(|\b(numpy\.)?(float|int)(16|32|64)\(|"
                  r"(?<![\w.])tensor\(|(?<![\w.])array\(|<Figure size|<(matplotlib|pandas|torch)\.[\w.]+ object at|"
                  r"<Axes|\[<matplotlib|(?<![\w.])Text\(\d|<IPython\.core\.display|<SoftmaxExplorer")


def content_pages(html_dir: Path) -> list[Path]:
    """Every rendered page of the book (not the search page, index or theme files)."""
    skip = {"search.html", "genindex.html", "py-modindex.html"}
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0].startswith("_") or path.name in skip:
            continue
        text = path.read_text(errors="ignore")
        if '<meta http-equiv="Refresh"' in text or 'http-equiv="refresh"' in text.lower():
            continue  # the root index.html only redirects
        pages.append(path)
    return pages


def _describe(node) -> str:
    classes = ".".join(node.get("class", []))
    text = " ".join(node.get_text(" ").split())
    return f"<{node.name}{'.' + classes if classes else ''}> {text[:80]!r}"


def stray_outputs(html: str) -> list[str]:
    """The defects of one page's HTML, each as a line."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = []
    for number, cell in enumerate(soup.select("div.cell"), 1):
        heading = cell.find_previous(["h1", "h2", "h3"])
        title = heading.get_text(" ").replace("#", "").strip()[:50] if heading else ""
        where = f"code cell {number} (under {title!r})"
        for out in cell.select("div.cell_output"):
            for p in out.find_all("p", recursive=False):     # a Markdown output, rendered inline
                text = " ".join(p.get_text(" ").split())
                if len(text) < 40 and not text.endswith((".", ":", "!", "?")):
                    found.append(f"{where}: a lone Markdown phrase as output: {text!r}")
        for out in cell.select("div.cell_output .output"):
            classes = set(out.get("class", []))
            text = out.get_text().strip()
            if "stderr" in classes:
                found.append(f"{where}: stderr output {text[:100]!r}")
            elif classes & {"text_plain", "stream", "stdout"}:
                if BARE_NUMBER.match(text):
                    found.append(f"{where}: a bare number as output: {text!r}")
                elif LONE_STRING.match(text) and "\n" not in text:
                    found.append(f"{where}: a lone string as output: {text[:80]!r}")
                elif REPR.search(text):
                    found.append(f"{where}: a Python repr as output: {text[:100]!r}")
                elif "text_plain" in classes and re.fullmatch(r"[\w\-]+", text):
                    found.append(f"{where}: a lone word as output (a string's repr?): {text!r}")
    # The prose and the outputs (glue results included), without the code cells' source.
    for node in soup.select("div.cell_input, div.highlight, pre, code, script, style, .skd-explorer"):
        node.extract()
    article = soup.select_one("article") or soup.body or soup
    for match in REPR.finditer(article.get_text(" ")):
        text = article.get_text(" ")
        found.append(f"prose: a Python repr {text[max(0, match.start() - 40):match.end() + 40]!r}")
    return found


def explorer_markup_defects(html: str) -> list[str]:
    """Reprs or non-numbers inside the explorers' attributes (slider ticks, ranges, data)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = []
    for root in soup.select("div.skd-explorer"):
        rid = root.get("id")
        for tag in root.find_all(True):
            for key, value in tag.attrs.items():
                value = " ".join(value) if isinstance(value, list) else str(value)
                if REPR.search(value) or "float64" in value:
                    found.append(f"explorer {rid}: <{tag.name} {key}={value[:60]!r}>")
        for option in root.select("datalist option"):
            try:
                float(option.get("value", ""))
            except ValueError:
                found.append(f"explorer {rid}: slider tick value={option.get('value')!r} is not a number")
        for slider in root.select("input[type=range]"):
            for key in ("min", "max", "value"):
                try:
                    float(slider.get(key, ""))
                except ValueError:
                    found.append(f"explorer {rid}: slider {key}={slider.get(key)!r} is not a number")
    return found


def test_stray_output_checker_catches_what_it_should():
    """The checker itself, on hand-written myst-nb markup."""
    def page(text, kind="text_plain"):
        return (f'<article><div class="cell docutils container"><div class="cell_output docutils container">'
                f'<div class="output {kind} highlight-myst-ansi notranslate"><div class="highlight"><pre>'
                f'<span></span>{text}</pre></div></div></div></div></article>')

    for bad in ("388.0287992098856", "0.3225103974305999", "'digits'", "digits", "np.float64(0.25)",
                "tensor(0.5000)", "&lt;Figure size 688x340 with 2 Axes&gt;", "array([1, 2])", "42"):
        assert stray_outputs(page(bad)), bad
    assert stray_outputs(page("a warning", kind="stderr"))
    assert stray_outputs('<div class="cell"><div class="cell_output"><img src="x.png"/>'
                         '<p><code>digits</code></p></div></div>')
    assert not stray_outputs(page("   method  T   mean\n0  kd  4  0.81"))
    assert not stray_outputs("<article><p>The teacher reaches 97.2 % (3 seeds).</p></article>")
    assert stray_outputs("<article><p>The gap is np.float64(0.3).</p></article>")
    assert not stray_outputs('<article><div class="cell_input"><pre>torch.tensor([1.0])</pre></div></article>')
    bad_ticks = '<div class="skd-explorer" id="e"><datalist><option value="np.float64(-0.6)"></option></datalist></div>'
    assert explorer_markup_defects(bad_ticks)
    good = '<div class="skd-explorer" id="e"><datalist><option value="-0.6020599913279624"></option></datalist></div>'
    assert not explorer_markup_defects(good)


@pytest.mark.book
def test_no_stray_output(built_book):
    problems = []
    pages = content_pages(Path(built_book))
    assert pages, f"no rendered page under {built_book}"
    for path in pages:
        html = path.read_text(errors="ignore")
        rel = path.relative_to(built_book).as_posix()
        problems += [f"{rel}: {p}" for p in stray_outputs(html) + explorer_markup_defects(html)]
    assert not problems, "stray output on the pages:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- in the browser

LAYOUT_JS = r"""() => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  // The column is the article's content box (its padding is not room for content).
  const box = column.getBoundingClientRect(), cs = getComputedStyle(column);
  const left = box.left + parseFloat(cs.paddingLeft), right = box.right - parseFloat(cs.paddingRight);
  const col = {left, right, width: right - left};
  const slack = 1.5;
  const scrolled = [];
  const scrollBox = el => {  // an ancestor strictly inside the column that scrolls horizontally
    for (let a = el.parentElement; a && a !== column; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && a.getBoundingClientRect().width <= col.width + slack) return a;
    }
    return null;
  };
  const describe = el => {
    const cls = (typeof el.className === 'string' && el.className) ? '.' + el.className.trim().split(/\s+/).slice(0, 3).join('.') : '';
    let sec = el.closest('section');
    const heading = sec && sec.querySelector('h1, h2, h3');
    return {tag: el.tagName.toLowerCase() + cls, id: el.id || '',
            text: (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 70),
            section: heading ? heading.textContent.replace('#', '').trim().slice(0, 60) : ''};
  };
  const bad = [];
  const reported = new Set();
  for (const el of column.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.position === 'fixed') continue;
    if (el.closest('script, style, .skd-explorer datalist, mjx-assistive-mml')) continue;
    let over = r.right - col.right, under = col.left - r.left;
    const tooWide = over > slack || under > slack;
    // An element that clips its own content (overflow hidden) cuts it off unless it scrolls.
    const clipped = (st.overflowX === 'hidden' || st.overflowX === 'clip') && el.scrollWidth > el.clientWidth + 2
                    && el.clientWidth > 0 && !['SPAN', 'MJX-CONTAINER'].includes(el.tagName) && r.width > col.width * 0.5;
    if (!tooWide && !clipped) continue;
    if (tooWide) {
      const sb = scrollBox(el);
      const eq = el.closest('mjx-container[display="true"]') || (el.matches('mjx-container[display="true"]') ? el : null);
      if (sb && eq && eq.scrollWidth > col.width + slack) {
        // Display math is split (aligned) to fit, never scrolled: a reader misses the end of it.
        if (!reported.has(eq)) { reported.add(eq); bad.push(Object.assign(describe(eq), {width: eq.scrollWidth,
            scrollWidth: eq.scrollWidth, column: Math.round(col.width), overflow: Math.round(eq.scrollWidth - col.width),
            kind: 'display math wider than the column (split it)'})); }
        continue;
      }
      if (sb) {
        const code = sb.closest('.cell_input, div.highlight:not(.cell_output *)');
        if (!reported.has(sb) && !code) { reported.add(sb); scrolled.push(Object.assign(describe(sb), {width: Math.round(sb.scrollWidth)})); }
        continue;
      }
    }
    let parent = el.parentElement, inside = false;
    while (parent && parent !== column) { if (reported.has(parent)) { inside = true; break; } parent = parent.parentElement; }
    reported.add(el);
    if (inside) continue;
    bad.push(Object.assign(describe(el), {width: Math.round(r.width), scrollWidth: el.scrollWidth,
        column: Math.round(col.width), overflow: Math.round(Math.max(over, under, 0)),
        kind: tooWide ? 'wider than the column' : 'content cut off (overflow hidden)'}));
  }
  const ticks = [];
  for (const opt of document.querySelectorAll('datalist option')) {
    const v = opt.getAttribute('value');
    if (v === null || v.trim() === '' || !isFinite(Number(v))) ticks.push(v);
  }
  return {column: Math.round(col.width), bad, ticks, scrolled,
          images: Array.from(column.querySelectorAll('img')).map(i => ({src: i.getAttribute('src'), w: i.naturalWidth,
              section: describe(i).section,
              shown: Math.round(i.getBoundingClientRect().width)}))};
}"""


@pytest.fixture(scope="module")
def page_browser():
    if UNAVAILABLE:
        if IN_CI:
            pytest.fail(f"CI=true, but {UNAVAILABLE}")
        pytest.skip(f"browser test skipped: {UNAVAILABLE}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    out = os.environ.get("SKDTUTOR_SCREENSHOTS")
    path = Path(out) if out else tmp_path_factory.mktemp("page-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.book
@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_layout_fits_the_column(page_browser, served_book, screenshot_dir, width):
    base, html_dir = served_book
    problems, scrolls, columns = [], [], {}
    for path in content_pages(html_dir):
        rel = path.relative_to(html_dir).as_posix()
        t = Tab(page_browser)
        try:
            t.page.set_viewport_size({"width": width, "height": 900})
            t.page.goto(f"{base}/{rel}", wait_until="load")
            # MathJax typesets after load; explorers initialise on their own.
            t.page.evaluate("""async () => {
                if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
                await new Promise(r => setTimeout(r, 300)); }""")
            result = t.page.evaluate(LAYOUT_JS)
            columns[rel] = result["column"]
            for b in result["bad"]:
                problems.append(f"{rel} @ {width}px: {b['kind']}: {b['tag']} {b['text']!r} in section "
                                f"{b['section']!r}: {b['width']} px (scrollWidth {b['scrollWidth']}) in a "
                                f"{b['column']} px column, {b['overflow']} px beyond")
            for b in result["scrolled"]:
                scrolls.append(f"{rel} @ {width}px: {b['tag']} {b['text'][:50]!r} in section {b['section']!r}: "
                               f"{b['width']} px of content in a {result['column']} px column")
            for number, img in enumerate(result["images"], 1):
                # A PNG shown at less than MIN_SCALE of its size has fonts under 9 px (the book's
                # style makes them 11 px at 1:1); figures are made at the column's width instead.
                if img["w"] and img["shown"] and img["shown"] < MIN_SCALE * img["w"]:
                    problems.append(f"{rel} @ {width}px: figure {number} (in section {img['section']!r}) is {img['w']} px "
                                    f"wide, shown at {img['shown']} px (scale {img['shown'] / img['w']:.2f}): "
                                    f"make it at the column's width (viz.figsize)")
            for v in result["ticks"]:
                problems.append(f"{rel} @ {width}px: slider tick value={v!r} is not a number")
            shot = screenshot_dir / f"{rel.replace('/', '_').removesuffix('.html')}_{width}.png"
            t.page.screenshot(path=str(shot), full_page=True)
        finally:
            t.close()
    print(f"\nscreenshots in {screenshot_dir}; column widths: {columns}")
    if scrolls:  # allowed, but a reader must scroll them: candidates for reshaping
        print("wider than the column, scrolling in their own box:\n" + "\n".join(scrolls))
    assert columns, "no page was checked"
    assert not problems, f"{len(problems)} layout defects:\n" + "\n".join(problems)
