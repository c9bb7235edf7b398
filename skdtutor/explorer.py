"""The kernel-free temperature slider: :func:`softmax_explorer` and :class:`SoftmaxExplorer`.

The HTML it renders carries the logits and a short script (:file:`explorer_template.html`)
that recomputes ``softmax(z / T)`` (and, with a multiplier, ``softmax(sphere(z, m) / T)``) in
the browser, so the sliders work in the static book, JupyterLab/Notebook and Colab alike.
No matplotlib, no ipywidgets; :mod:`skdtutor.viz` re-exports ``softmax_explorer`` and
``SoftmaxExplorer``. Colours (:mod:`skdtutor.style`): the highlighted (true) class in
``COLORS["true"]``, KD bars in ``COLORS["kd"]``, SKD bars in ``COLORS["skd"]``.

**Why plain JavaScript.** The static book has no kernel, so an ipywidgets (or anywidget)
slider never redraws there. Altair/Vega-Lite and Bokeh (``CustomJS``) need about 1 MB of
renderer per page, inlined or from a CDN; Plotly sliders step through precomputed frames and
inline ``plotly.js`` is about 3.5 MB. About seventy lines of dependency-free ES5 inline in the
output draw a dozen bars the same way in all three front ends, offline. A static first drawing
(computed here in Python) shows the distribution at the initial T where no script runs
(an untrusted notebook, GitHub's viewer).
"""
from __future__ import annotations

import operator
import re
import secrets

import numpy as np
import torch

from .explorer_panel import BAR_HEIGHT, BAR_MAX, HIGHLIGHT, panel_html
from .style import COLORS, COLUMN_PX, checked_index, checked_temperature, finite_number, positive_number

__all__ = ["softmax_explorer", "SoftmaxExplorer", "panel_html"]


_MAX_SAMPLES = 200  # rows of logits one explorer accepts (a menu entry each)


class SoftmaxExplorer:
    """A temperature slider that needs no kernel: the HTML carries the logits and a short
    script that recomputes ``softmax(z / T)`` in the browser (see the module docstring for
    why this is plain JavaScript rather than ipywidgets or a plotting library).

    Displaying the object (last expression of a cell, or ``display(explorer)``) renders it
    through ``_repr_html_``; ``.html()`` returns the markup and ``.to_ipython()`` an
    ``IPython.display.HTML``. Neither path imports ipywidgets.

    The markup is one ``<div class="skd-explorer">`` holding a static first drawing (the
    bars at the initial T, computed here in Python), the controls (hidden until the
    script runs), the logits as a JSON data island (``<script type="application/json"
    class="skd-spec">``) and the script. Without JavaScript (an untrusted notebook,
    GitHub's viewer) the reader still sees the distribution at the initial T.
    """

    _counter = 0

    def __init__(self, logits, class_names=None, labels=None, temperature: float = 1.0,
                 t_range=(0.25, 32.0), multiplier: float | None = None, title: str | None = None,
                 highlight=None, width: int = COLUMN_PX, m_range=(0.5, 6.0)):
        z = torch.as_tensor(logits).detach().to(device="cpu", dtype=torch.float64)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] < 2 or z.shape[0] < 1:
            raise ValueError(f"logits must be a vector (C,) or a few rows (k, C) with C >= 2, got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("logits contain NaN or infinite values")
        lo, hi = _checked_range(t_range, "t_range")
        temperature = checked_temperature(temperature)
        if not lo <= temperature <= hi:
            raise ValueError(f"temperature {temperature} lies outside t_range {t_range}")
        m_lo, m_hi = _checked_range(m_range, "m_range")
        if multiplier is not None:
            multiplier = positive_number(multiplier, "multiplier")
            if not m_lo <= multiplier <= m_hi:
                raise ValueError(f"multiplier {multiplier} lies outside m_range {m_range}")
        k, c = z.shape
        if k > _MAX_SAMPLES:
            raise ValueError(f"{k} rows of logits: the explorer is for one or a few samples "
                             f"(at most {_MAX_SAMPLES}); pick some rows, e.g. logits[:8]")
        names = [str(n) for n in _as_list(class_names)] if class_names is not None else [str(i) for i in range(c)]
        if len(names) != c:
            raise ValueError(f"{len(names)} class names for {c} classes")
        row_labels = [str(s) for s in _as_list(labels)] if labels is not None else [f"#{i}" for i in range(k)]
        if len(row_labels) != k:
            raise ValueError(f"{len(row_labels)} labels for {k} rows of logits")
        given, highlight = highlight, _as_list(highlight)
        if highlight is None or not isinstance(highlight, list):
            highlight = [highlight] * k
        try:
            highlight = [None if h is None else operator.index(h) for h in highlight]
        except TypeError:
            raise ValueError(f"highlight must be a class index, one per row, or None; got {given!r}") from None
        if len(highlight) != k:
            raise ValueError(f"{len(highlight)} highlight entries for {k} rows of logits")
        if any(h is not None and not 0 <= h < c for h in highlight):
            raise ValueError(f"highlight {highlight} must hold class indices in [0, {c})")
        if not (isinstance(width, (int, np.integer)) and width >= 200):
            raise ValueError(f"width must be an integer >= 200 (pixels), got {width!r}")
        self.logits, self.class_names, self.row_labels = z, names, row_labels
        self.temperature, self.t_range = temperature, (lo, hi)
        self.multiplier, self.m_range = multiplier, (m_lo, m_hi)
        self.title = title or "Softened distribution softmax(z / T)"
        self.highlight, self.width = highlight, int(width)
        SoftmaxExplorer._counter += 1
        # A random part keeps ids unique across kernel restarts in one notebook document;
        # each further rendering of the same object gets a suffix (see html()).
        self.element_id = f"skd-explorer-{SoftmaxExplorer._counter}-{secrets.token_hex(4)}"
        self._renders = 0

    def __repr__(self) -> str:
        k, c = self.logits.shape
        extra = f", multiplier={self.multiplier:g}" if self.multiplier is not None else ""
        return (f"<SoftmaxExplorer: {k} sample(s) x {c} classes, T={self.temperature:g} in "
                f"[{self.t_range[0]:g}, {self.t_range[1]:g}]{extra}; display it in Jupyter or the book>")

    def probabilities(self, temperature: float | None = None, multiplier: float | None = None,
                      sample: int = 0) -> np.ndarray:
        """What the bars show: ``softmax(z / T)``, or with ``multiplier``
        ``softmax(sphere(z, multiplier) / T)`` (:func:`skdtutor.losses.sphere`).

        Raises ``ValueError`` for a temperature or multiplier that is not a finite number > 0
        (``T <= 0`` would divide by zero or invert the distribution) and for a ``sample`` that
        is not a row of the logits."""
        from .losses import sphere

        T = self.temperature if temperature is None else checked_temperature(temperature)
        k = self.logits.shape[0]
        row = checked_index(sample, k, within=f"the explorer's {k} row(s)")
        z = self.logits[row:row + 1]
        if multiplier is not None:
            z = sphere(z, positive_number(multiplier, "multiplier"))
        return torch.softmax(z / T, dim=1)[0].numpy()

    def html(self) -> str:
        """The markup: one self-contained ``<div>`` (no external files, no network)."""
        import html as html_mod
        import json
        from importlib import resources

        esc = html_mod.escape
        element_id = self.element_id if self._renders == 0 else f"{self.element_id}-r{self._renders}"
        self._renders += 1
        k, c = self.logits.shape
        lo, hi = self.t_range
        m_lo, m_hi = self.m_range
        spherical = self.multiplier is not None
        m0 = self.multiplier if spherical else min(max(2.0, m_lo), m_hi)
        spec = {"classes": self.class_names, "spherical": spherical,
                "samples": [{"label": lab, "logits": row, "highlight": h}
                            for lab, row, h in zip(self.row_labels, self.logits.tolist(), self.highlight)]}
        # JSON inside <script>: escape <, > and & so no class name can close the element.
        spec_json = (json.dumps(spec).replace("<", "\\u003c").replace(">", "\\u003e")
                     .replace("&", "\\u0026"))
        n_panels = 2 if spherical else 1
        bar = min(BAR_MAX, (min(self.width, 700) - 26 - 18 * (n_panels - 1)) // (n_panels * c) - 2)
        panels = [("raw", "softmax(z / T)", COLORS["kd"], self.probabilities())]
        if spherical:
            panels = [("raw", "KD, raw logits: softmax(z / T)", COLORS["kd"], self.probabilities()),
                      ("spherical", "SKD: softmax(sphere(z, m) / T)", COLORS["skd"],
                       self.probabilities(multiplier=self.multiplier))]
        highlight = self.highlight[0]
        panels_markup = "".join(
            panel_html(kind, caption, color, probs, self.class_names, highlight, bar)
            for kind, caption, color, probs in panels)
        t_ticks = [t for t in 2.0 ** np.arange(-6, 11) if lo <= t <= hi]
        m_ticks = [m for m in np.arange(1, 11, dtype=float) if m_lo <= m <= m_hi]
        options = "".join(f'<option value="{i}">{esc(s)}</option>' for i, s in enumerate(self.row_labels))
        replacements = {
            "__ID__": element_id,
            "__WIDTH__": str(self.width),
            "__TITLE__": esc(self.title),
            "__TMIN__": _num(np.log10(lo)), "__TMAX__": _num(np.log10(hi)),
            "__T0__": _num(np.log10(self.temperature)),
            "__T0_TEXT__": _fmt_t(self.temperature),
            "__T_TICKS__": "".join(f'<option value="{_num(np.log10(t))}"></option>' for t in t_ticks),
            "__MMIN__": _num(m_lo), "__MMAX__": _num(m_hi), "__M0__": _num(m0),
            "__M0_TEXT__": f"{m0:.2f}",
            "__M_TICKS__": "".join(f'<option value="{_num(m)}"></option>' for m in m_ticks),
            "__MULT_STYLE__": "" if spherical else "display:none;",
            "__SAMPLE_STYLE__": "" if k > 1 else "display:none;",
            "__OPTIONS__": options,
            "__STATIC_NOTE__": (f"static view at T = {_fmt_t(self.temperature)}"
                                + (f", m = {m0:.2f}" if spherical else "")
                                + ". The sliders need JavaScript: run this cell (or trust the notebook)"
                                  " in Jupyter, or open the book's web page."),
            "__PANELS__": panels_markup,
            "__LEGEND__": "" if all(h is None for h in self.highlight) else (
                f'<span style="display:inline-block;width:10px;height:10px;background:{HIGHLIGHT};'
                f'vertical-align:-1px"></span> highlighted class'),
            "__SPEC__": spec_json,
        }
        replacements["__BAR_HEIGHT__"] = str(BAR_HEIGHT)
        replacements["__HIGHLIGHT__"] = HIGHLIGHT
        template = resources.files("skdtutor").joinpath("explorer_template.html").read_text()
        # One pass, so that text inserted (a title, a class name) is never substituted again.
        return re.sub(r"__[A-Z0-9_]+?__", lambda m: replacements.get(m.group(0), m.group(0)), template)

    def _repr_html_(self) -> str:
        return self.html()

    def to_ipython(self):
        """An ``IPython.display.HTML`` object with the markup (for ``display(...)``)."""
        from IPython.display import HTML

        return HTML(self.html())


def _as_list(value):
    """Tensors and arrays as plain lists (so that str() gives '3', not 'tensor(3)');
    anything else unchanged."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (tuple, range)):
        return list(value)
    return value


def _num(value) -> str:
    """A plain decimal number for HTML attributes (``-0.6020599913279624``, never
    ``np.float64(...)``): the shortest repr of the Python float."""
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(number)


def _checked_range(pair, name: str) -> tuple[float, float]:
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {pair!r}") from None
    lo, hi = finite_number(lo, name), finite_number(hi, name)
    if not 0 < lo < hi:
        raise ValueError(f"{name} must be (low, high) with 0 < low < high, got {pair!r}")
    return lo, hi


def _fmt_t(T: float) -> str:
    """Three significant digits, as JavaScript's ``T.toPrecision(3)`` shows them (T < 1000)."""
    return f"{T:#.3g}".rstrip(".")


def softmax_explorer(logits, class_names=None, **kwargs) -> SoftmaxExplorer:
    """Kernel-free temperature slider for one logit vector (C,) or a few (k, C).

    ``logits``: a list, NumPy array or torch tensor (any device, grads are detached).
    Keyword arguments: ``labels`` (names of the rows, shown in a sample menu),
    ``temperature`` (initial T), ``t_range`` (slider range, log scale),
    ``multiplier`` (adds an SKD panel: softmax(sphere(z, m) / T) with a multiplier
    slider over ``m_range``), ``title``, ``highlight`` (a class index, or one per row,
    drawn in ``COLORS["true"]``, e.g. the true label), ``width`` (pixels, default the
    column's 688).
    Raises ``ValueError`` on malformed input. Display the result in a cell.
    """
    return SoftmaxExplorer(logits, class_names, **kwargs)
