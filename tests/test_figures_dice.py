"""skdtutor.figures.dice_search_terms: the Dice search's terms against T (chapter 4)."""
from __future__ import annotations

import matplotlib
import numpy as np
import torch

from skdtutor import figures, style
from skdtutor.temperature import dice_temperature_search

matplotlib.use("Agg")


def test_dice_search_terms_draws_each_term_in_its_style_bold_or_thin():
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(0)
    teacher, student = 4 * torch.randn(30, 5, generator=g), torch.randn(30, 5, generator=g)
    _, table = dice_temperature_search(teacher, student, torch.arange(30) % 5, [0.5, 1, 2, 4, 8])
    fig, ax = plt.subplots()
    try:
        assert figures.dice_search_terms(table, ax=ax) is ax
        figures.dice_search_terms(table, ax=ax, bold=False)
        bold, thin = ax.lines[:3], ax.lines[3:]
        assert [l.get_label() for l in bold] == ["S(T): teacher vs CE student", "L(T): teacher vs labels",
                                                 "S(T) + L(T)"]
        assert all(l.get_label().startswith("_") for l in thin)  # thin lines stay out of the legend
        for lines in (bold, thin):
            for line, column, method in zip(lines, ("student_term", "label_term", "total"), ("kd", "ce", "dice")):
                np.testing.assert_allclose(line.get_xdata(), table["T"])
                np.testing.assert_allclose(line.get_ydata(), table[column])
                assert line.get_color() == style.method_style(method)["color"]
                assert line.get_linestyle() == style.method_style(method)["ls"]
        assert all(b.get_linewidth() > t.get_linewidth() for b, t in zip(bold, thin))
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "temperature T"
    finally:
        plt.close(fig)
