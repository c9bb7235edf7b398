"""Numbers and number-chosen words into the book's text: :func:`glue` and its helpers.

A chapter computes a value, glues it under a name, and the Markdown shows it with
``{glue:text}`name:.2f``` (numbers) or ``{glue:md}`name``` (phrases from
:func:`glue_words`), so every number on the page comes from code run in the same build.
Outside the book build (Colab, plain Jupyter) gluing is a no-op. Re-exported by
:mod:`skdtutor.viz`.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["glue", "glue_words", "glue_all", "glue_table"]


def glue(name: str, value, display: bool = False):
    """``myst_nb.glue`` when myst-nb is installed (the book build); otherwise a no-op that
    still shows the value when ``display=True`` (Colab, plain Jupyter). Returns ``value``.

    NumPy scalars and one-element tensors or arrays are glued as Python numbers, so
    that ``{glue:text}`name:.2f``` formats them."""
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1) \
            or (isinstance(value, np.ndarray) and value.size == 1):
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display
            _display(value)
        return value
    _glue(name, value, display=display)
    return value


def glue_words(name: str, text: str):
    """Glue a short Markdown phrase chosen from the numbers (``"smaller"``, ``"both datasets"``),
    shown in the text with ``{glue:md}`name```, so the wording follows the results."""
    from IPython.display import Markdown

    return glue(name, Markdown(text))


def glue_all(prefix: str, values, words: bool = False) -> dict:
    """Glue every ``key: value`` of the mapping ``values`` as ``prefix + key`` (:func:`glue`;
    :func:`glue_words` when ``words``). Returns ``{prefix + key: glued value}``."""
    put = glue_words if words else glue
    return {prefix + k: put(prefix + k, v) for k, v in values.items()}


def glue_table(prefix: str, table, words: bool = False) -> dict:
    """Glue every cell of a DataFrame as ``prefix + f"{row}_{column}"`` (:func:`glue_all` per
    row; words with ``words``), e.g. one row per dataset: ``glue_table("ch5_", per_dataset)``
    glues ``ch5_digits_gap``. NaN cells are skipped. Returns ``{name: glued value}``."""
    out = {}
    for row in table.index:  # cell by cell: each column keeps its dtype (ints stay ints)
        cells = {str(c): table.at[row, c] for c in table.columns}
        out.update(glue_all(f"{prefix}{row}_", {k: v for k, v in cells.items()
                                                if not (isinstance(v, float) and np.isnan(v))}, words))
    return out
