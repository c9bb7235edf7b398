"""What a book build stored: glued values, their formatting, and the bibliography.

The reading half of :mod:`skdtutor.export`. :func:`load_glue` collects the values one executed
notebook glued (``skdtutor.viz.glue``): myst-nb 1.x strips the glue outputs from the
notebook it writes under ``_build/jupyter_execute`` and stores them next to it as
``NAME.glue.json``; outputs still carrying ``scrapbook`` metadata are read too.
:func:`format_plain_text` formats a glued ``text/plain`` repr exactly as myst-nb's
``{glue:text}`` role does, and :func:`load_bib` reads the author-year labels of a BibTeX file
(it needs pybtex, which the book build installs). :class:`ExportError` is the one error of
the export: a role or directive that cannot be resolved. The module uses only the standard
library (pybtex on demand).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

__all__ = ["ExportError", "GLUE_MIME_PREFIX", "as_text", "format_plain_text", "load_glue",
           "load_bib"]

# The mime prefix of the hidden glue records in an executed notebook (they display nothing).
GLUE_MIME_PREFIX = "application/papermill.record/"


class ExportError(ValueError):
    """A glue role or directive that cannot be resolved (message names notebook and role)."""


def format_plain_text(text: str, fmt_spec: str) -> str:
    """Format a glued ``text/plain`` repr as myst-nb's ``{glue:text}`` does.

    The repr is read back with :func:`ast.literal_eval` (strings lose their quotes; a repr
    that is not a literal stays text), converted by the spec's type character (``d`` -> int,
    ``f``/``e``/``g``/``%`` -> float, ``s`` -> str) and passed to :func:`format`."""
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        value = text
    if fmt_spec == "":
        return str(value)
    kind = fmt_spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, fmt_spec)


def _strip_prefix(output: dict) -> dict:
    meta = output.get("metadata", {}).get("scrapbook", {})
    prefix = meta.get("mime_prefix", "") or ""
    data = {k[len(prefix):] if prefix and k.startswith(prefix) else k: v
            for k, v in output.get("data", {}).items()}
    return {"data": data, "metadata": {k: v for k, v in output.get("metadata", {}).items() if k != "scrapbook"}}


def load_glue(notebook: dict, glue_json: Path | None = None) -> dict[str, dict]:
    """Glue data of one executed notebook: ``{key: {"data": {mime: value}, "metadata": {...}}}``.

    Reads the ``scrapbook`` outputs still in the notebook and, when given and present, the
    ``NAME.glue.json`` myst-nb wrote next to it (its entries win: they are what the build used)."""
    glue: dict[str, dict] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            meta = output.get("metadata", {})
            if isinstance(meta, dict) and "scrapbook" in meta:
                glue[meta["scrapbook"]["name"]] = _strip_prefix(output)
    if glue_json is not None and Path(glue_json).is_file():
        for key, output in json.loads(Path(glue_json).read_text(encoding="utf-8")).items():
            glue[key] = _strip_prefix(output)
    return glue


def as_text(value) -> str:
    """A notebook string field as one string (nbformat stores it as a string or a list of lines)."""
    return "".join(value) if isinstance(value, list) else str(value)


def load_bib(path: Path) -> dict[str, tuple[str, str]]:
    """``{key: (authors, year)}`` of a BibTeX file: "Guo et al.", "Cho and Hariharan"."""
    from pybtex.database import parse_file

    def clean(name: str) -> str:
        return name.replace("{", "").replace("}", "")

    bib = {}
    for key, entry in parse_file(str(path)).entries.items():
        last = [clean(" ".join(p.last_names)) for p in entry.persons.get("author", [])]
        who = (last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2
               else f"{last[0]} et al." if last else clean(entry.fields.get("title", key)))
        bib[key] = (who, entry.fields.get("year", "n.d."))
    return bib
