"""The bar-chart markup of the explorers: one panel of class probabilities as HTML.

:class:`skdtutor.explorer.SoftmaxExplorer` draws its static first view with it (the
script in :file:`explorer_template.html` redraws the same markup in the browser) and
:mod:`skdtutor.live` redraws its panels with :func:`panel_html` after every slider move.
"""
from __future__ import annotations

import numpy as np

from .style import COLORS

__all__ = ["panel_html", "BAR_HEIGHT", "BAR_MAX", "HIGHLIGHT"]

BAR_HEIGHT = 120  # pixels for probability 1; grid lines every 0.25
BAR_MAX = 44      # widest bar, pixels (more when a panel has only a few classes)
HIGHLIGHT = COLORS["true"]  # the highlighted (true) class


def _panel_html(kind, caption, color, probs, class_names, highlight, bar) -> str:
    """One bar chart. Columns share the panel's width (flex), at most ``BAR_MAX`` px each;
    ``bar`` is the expected column width, used only to decide whether the static drawing
    prints values and names (the script re-decides from the measured width)."""
    import html as html_mod

    esc = html_mod.escape
    hide_values = "" if bar >= 20 else "visibility:hidden;"
    hide_names = "" if bar >= 10 else "visibility:hidden;"
    axis_w = 20
    max_width = max(250, len(class_names) * (BAR_MAX + 2) + axis_w)  # room for the captions
    bar_max = max(BAR_MAX, (max_width - axis_w - 1) // len(class_names) - 2)  # few classes: wider bars
    col = f"flex:1 1 0;min-width:0;max-width:{bar_max}px;"
    entropy = float(-(probs * np.log(np.clip(probs, 1e-300, None))).sum())
    cols = []
    for j, (name, p) in enumerate(zip(class_names, probs)):
        fill = HIGHLIGHT if j == highlight else color
        cols.append(
            f'<div class="skd-col" style="{col}display:flex;flex-direction:column;'
            f'justify-content:flex-end;height:100%">'
            f'<div class="skd-val" style="font-size:10px;line-height:12px;color:#333;text-align:center;'
            f'overflow:hidden;white-space:nowrap;{hide_values}">{p:.2f}</div>'
            f'<div class="skd-bar" data-class="{j}" data-prob="{p:.12g}" title="{esc(name)}: {p:.4f}" '
            f'style="height:{max(1, round(p * BAR_HEIGHT))}px;background:{fill};'
            f'border-radius:2px 2px 0 0"></div></div>')
    names = "".join(
        f'<div class="skd-name" title="{esc(n)}" style="{col}text-align:center;font-size:11px;'
        f'overflow:hidden;text-overflow:ellipsis;white-space:nowrap;'
        f'font-weight:{"bold" if j == highlight else "normal"};{hide_names}">{esc(n)}</div>'
        for j, n in enumerate(class_names))
    ticks = "".join(
        f'<span style="position:absolute;right:4px;bottom:{round(v * BAR_HEIGHT) - 6}px">{text}</span>'
        for v, text in ((0.0, "0"), (0.5, ".5"), (1.0, "1")))
    return (
        f'<div class="skd-panel" data-panel="{kind}" data-color="{color}" '
        f'style="flex:1 1 240px;min-width:0;max-width:{max_width}px">'
        f'<div title="{esc(caption)}" style="font-size:12px;color:#222;white-space:nowrap;overflow:hidden;'
        f'text-overflow:ellipsis">{esc(caption)}</div>'
        f'<div class="skd-stats" style="font-size:11px;color:#666;margin-bottom:2px">'
        f'max p {probs.max():.3f} \u00b7 entropy {entropy:.3f} nats</div>'
        f'<div style="display:flex">'
        f'<div aria-hidden="true" style="position:relative;flex:none;width:{axis_w}px;'
        f'height:{BAR_HEIGHT + 14}px;font-size:9px;color:#888">{ticks}</div>'
        f'<div class="skd-plot" style="flex:1 1 auto;min-width:0;display:flex;align-items:flex-end;gap:2px;'
        f'height:{BAR_HEIGHT + 14}px;border-bottom:1px solid #888;border-left:1px solid #ccc;'
        f'background:repeating-linear-gradient(to top,#e8e8e8 0,#e8e8e8 1px,transparent 1px,'
        f'transparent {BAR_HEIGHT // 4}px)">{"".join(cols)}</div></div>'
        f'<div style="display:flex;margin-top:2px"><div style="flex:none;width:{axis_w + 1}px"></div>'
        f'<div style="flex:1 1 auto;min-width:0;display:flex;gap:2px">{names}</div></div></div>')


def panel_html(kind, caption, color, probs, class_names, highlight=None, bar: int = 20) -> str:
    """One bar chart of probabilities ``probs`` as the explorer draws it (``kind``: "raw" or
    "spherical"; ``highlight``: the class drawn in ``COLORS["true"]``); used by :mod:`skdtutor.live`."""
    return _panel_html(kind, caption, color, np.asarray(probs, dtype=float), class_names, highlight, bar)
