"""Reader notebooks: the executed chapters with every glued value written into the text.

In the book build, ``{glue:text}`name:.1f``` in a chapter's Markdown is replaced by the value
that the chapter's code glued (``skdtutor.viz.glue``). A reader who opens the chapter in Colab
or JupyterLab would see the raw role instead. After ``jupyter-book build .`` run::

    python -m skdtutor.export _build            # -> _build/html/notebooks/NN_name.ipynb

It reads each executed notebook that myst-nb wrote under ``_build/jupyter_execute`` together
with its glue data (:func:`load_glue`, in :mod:`skdtutor.export_glue`), substitutes every
glue role and directive in the Markdown (:class:`~skdtutor.export_markdown.MarkdownRenderer`,
whose docstring lists what replaces what), keeps the outputs, and writes one notebook per
chapter into ``html/notebooks`` so that they are published next to the pages.

With a bibliography (``--bib``, default ``book/references.bib`` next to the build folder),
``{cite}`key``` and ``{cite:t}`key``` become author-year text, "(Guo et al., 2020)" and
"Guo et al. (2020)", as in the pages (this needs pybtex, which the book build installs).

A role or directive that cannot be resolved (unknown key, no ``text/plain``, a format spec
that does not fit the value) raises :class:`ExportError` naming the notebook and the role:
nothing is ever left raw. This module holds the notebook and book writers and the command
line; ``ExportError``, ``format_plain_text``, ``load_glue`` and ``load_bib`` are re-exported
from :mod:`skdtutor.export_glue`. The export uses only the standard library.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

from .export_glue import (GLUE_MIME_PREFIX, ExportError, as_text, format_plain_text, load_bib,
                          load_glue)
from .export_markdown import MarkdownRenderer

__all__ = ["ExportError", "format_plain_text", "load_glue", "export_notebook", "export_book", "main"]

NOTE = ("*Exported from the book build: the numbers in the text are the values this notebook "
        "computed when the book was built. Run the cells to recompute them (the text does not "
        "update).*")


def export_notebook(notebook: dict, glue: dict[str, dict], name: str = "notebook", other=None,
                    note: bool = True, bib: dict | None = None) -> dict:
    """Return a copy of an executed notebook with every glue role substituted.

    Outputs are kept, except the hidden glue records (``scrapbook`` outputs whose mime types
    carry the papermill prefix: they display nothing). ``other(doc)`` returns the glue data of
    another notebook for ``{glue:text}`doc::key``` references; ``bib`` (:func:`load_bib`) turns
    citation roles into author-year text."""
    nb = copy.deepcopy(notebook)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", [])
                               if not ("scrapbook" in o.get("metadata", {})
                                       and all(k.startswith(GLUE_MIME_PREFIX) for k in o.get("data", {})))]
            for o in cell["outputs"]:
                o.get("metadata", {}).pop("scrapbook", None)
        elif cell.get("cell_type") == "markdown":
            renderer = MarkdownRenderer(name, glue, other, bib)
            cell["source"] = renderer.markdown(as_text(cell.get("source", "")))
            if renderer.attachments:
                cell.setdefault("attachments", {}).update(renderer.attachments)
    if note:
        cell = {"cell_type": "markdown", "metadata": {"tags": ["skdtutor-export"]}, "source": NOTE}
        if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
            cell["id"] = "skdtutor-export-note"          # cell ids are required from nbformat 4.5
        nb["cells"].insert(0, cell)
    nb.setdefault("metadata", {}).pop("scrapbook", None)
    return nb


def _executed(build: Path) -> tuple[Path, Path]:
    """(jupyter_execute folder, build folder) for a build folder or the project holding it."""
    build = Path(build)
    for candidate in (build, build / "_build", build.parent):
        if (candidate / "jupyter_execute").is_dir():
            return candidate / "jupyter_execute", candidate
    raise FileNotFoundError(f"no jupyter_execute folder in {build} (run `jupyter-book build .` first, "
                            "then pass its _build folder)")


def export_book(build: Path, out: Path | None = None, bib: Path | None | bool = True) -> list[Path]:
    """Export every executed notebook of a book build; return the written paths.

    ``build`` is the build folder (``_build``, holding ``jupyter_execute`` and ``html``) or
    the project folder; ``out`` defaults to ``<build>/html/notebooks``. ``bib`` is a BibTeX
    file for the citation roles; ``True`` (the default) uses ``book/references.bib`` of the
    project holding the build folder when there is one, ``None``/``False`` leaves citations."""
    execute, build = _executed(build)
    if bib is True:
        bib = build.parent / "book" / "references.bib"
        bib = bib if bib.is_file() else None
    bib = load_bib(Path(bib)) if bib else None
    out = Path(out) if out is not None else build / "html" / "notebooks"
    sources = sorted(p for p in execute.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not sources:
        raise FileNotFoundError(f"{execute} holds no executed notebooks")
    stems = [p.stem for p in sources]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ExportError(f"two executed notebooks share a name: {dupes}")
    cache: dict[Path, dict | None] = {}

    def glue_of(path: Path):
        if path not in cache:
            nb_path = path.with_suffix(".ipynb")
            if not nb_path.is_file():
                cache[path] = None
            else:
                nb = json.loads(nb_path.read_text(encoding="utf-8"))
                cache[path] = load_glue(nb, nb_path.with_name(nb_path.stem + ".glue.json"))
        return cache[path]

    written = []
    out.mkdir(parents=True, exist_ok=True)
    for src in sources:
        rel = src.relative_to(execute).as_posix()

        def other(doc: str, src=src):
            doc = re.sub(r"\.(ipynb|md)$", "", doc)
            for base in (src.parent, execute):
                found = glue_of((base / doc).resolve().with_suffix(""))
                if found is not None:
                    return found
            return None

        notebook = json.loads(src.read_text(encoding="utf-8"))
        glue = glue_of(src.with_suffix("").resolve()) or {}
        exported = export_notebook(notebook, glue, name=rel, other=other, bib=bib)
        target = out / src.name
        target.write_text(json.dumps(exported, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skdtutor.export",
        description="Write reader notebooks (glued values substituted into the text, outputs kept) "
                    "from a jupyter-book build.")
    parser.add_argument("build", type=Path, help="the build folder (_build) or the project folder")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default <build>/html/notebooks)")
    parser.add_argument("--bib", type=Path, default=None,
                        help="BibTeX file for {cite} roles (default: book/references.bib beside the build folder)")
    args = parser.parse_args(argv)
    try:
        written = export_book(args.build, args.out, bib=args.bib or True)
    except (ExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
