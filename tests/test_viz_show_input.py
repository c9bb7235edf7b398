"""Helpers added for chapters 1 and 2."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from skdtutor import viz  # noqa: E402


def test_show_input_draws_an_image_without_ticks():
    fig, ax = plt.subplots()
    out = viz.show_input(torch.arange(64.0).view(1, 8, 8), ax=ax, title="a digit")
    assert out is ax and len(ax.images) == 1 and ax.get_title() == "a digit"
    assert ax.images[0].get_array().shape == (8, 8)
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
    plt.close(fig)


def test_show_input_draws_colour_images_and_signals():
    fig, (a, b) = plt.subplots(1, 2)
    viz.show_input(torch.randn(3, 4, 5), ax=a)
    assert a.images[0].get_array().shape == (4, 5, 3)
    viz.show_input(torch.randn(1, 40), ax=b)
    assert len(b.lines) == 1 and len(b.lines[0].get_xdata()) == 40
    plt.close(fig)


def test_show_input_rejects_batches():
    with pytest.raises(ValueError, match="one sample"):
        viz.show_input(torch.zeros(2, 1, 8, 8))
