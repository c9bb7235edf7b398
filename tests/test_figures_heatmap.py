"""skdtutor.figures.probability_heatmap: the drawn matrix, its outlines, labels and checks."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

from skdtutor import figures, style

matplotlib.use("Agg")


def test_probability_heatmap_draws_the_matrix_outlines_and_annotations():
    import matplotlib.pyplot as plt

    p = torch.tensor([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
    off = p.numpy().copy()
    off[0, 0] = off[1, 1] = np.nan
    fig, (a, b) = plt.subplots(1, 2)
    try:
        image = figures.probability_heatmap(a, p, ["x", "y", "z"], outline=[0, 1], colorbar="p")
        np.testing.assert_allclose(image.get_array(), p.numpy())
        assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(0.9)
        frames = [r for r in a.patches if not r.get_fill()]
        assert [(r.get_x() + 0.5, r.get_y() + 0.5) for r in frames] == [(0, 0), (1, 1)]
        assert {to_hex(r.get_edgecolor()) for r in frames} == {style.COLORS["true"].lower()}
        assert [t.get_text() for t in a.get_xticklabels()] == ["x", "y", "z"] and a.get_yticks().size == 0
        assert len(fig.axes) == 3  # the colour bar
        figures.probability_heatmap(b, off, "xyz", row_names=["x", "y"], annotate=True,
                                    outline=np.nanargmax(off, axis=1), outline_color="#222222")
        texts = sorted(t.get_text() for t in b.texts)
        assert texts == sorted(f"{v:.2f}" for v in off[np.isfinite(off)])  # no text on NaN cells
        frames = [r for r in b.patches if not r.get_fill()]
        assert [(r.get_x() + 0.5, r.get_y() + 0.5) for r in frames] == [(1, 0), (0, 1)]
        assert [t.get_text() for t in b.get_yticklabels()] == ["x", "y"]
    finally:
        plt.close(fig)


def test_probability_heatmap_log_scale_floors_tiny_values_and_validates():
    import matplotlib.pyplot as plt

    p = np.array([[1 - 2e-15, 1e-15, 1e-15]])
    fig, ax = plt.subplots()
    try:
        image = figures.probability_heatmap(ax, p, ["a", "b", "c"], log_floor=1e-12)
        assert (image.norm.vmin, image.norm.vmax) == (1e-12, 1)
        np.testing.assert_allclose(image.get_array(), [[1 - 2e-15, 1e-12, 1e-12]])
        with pytest.raises(ValueError, match="shape"):
            figures.probability_heatmap(ax, p, ["a", "b"])
        with pytest.raises(ValueError, match="log_floor"):
            figures.probability_heatmap(ax, p, ["a", "b", "c"], log_floor=0)
    finally:
        plt.close(fig)
