"""Reader notebooks: the executed chapters with every glued value written into the text.

In the book build, ``{glue:text}`name:.1f``` in a chapter's Markdown is replaced by the value
that the chapter's code glued (``skdtutor.viz.glue``). A reader who opens the chapter in Colab
or JupyterLab would see the raw role instead. After ``jupyter-book build .`` run::

    python -m skdtutor.export _build            # -> _build/html/notebooks/NN_name.ipynb

It reads each executed notebook that myst-nb wrote under ``_build/jupyter_execute`` together
with its glue data (myst-nb 1.x strips the glue outputs from that notebook and stores them
next to it as ``NAME.glue.json``; outputs still carrying ``scrapbook`` metadata are read too),
substitutes every glue role and directive in the Markdown, keeps the outputs, and writes one
notebook per chapter into ``html/notebooks`` so that they are published next to the pages.

What replaces what:

* ``{glue:text}`key:fmt``` -> ``format_plain_text`` of the glued ``text/plain`` (exactly what
  myst-nb does: the repr is read back with ``ast.literal_eval``, then Python's ``format``);
* ``{glue:md}`key``` -> the glued Markdown;
* ``{glue}`key```, ``{glue:}`key```, ``{glue:any}`key``` and the ``{glue}`` / ``{glue:figure}``
  / ``{glue:md}`` / ``{glue:math}`` directives -> the best output the value has: an image is
  embedded as an attachment of the Markdown cell (a figure's caption follows it), an HTML
  table is written as HTML, Markdown as Markdown, LaTeX as math, else the plain text.

With a bibliography (``--bib``, default ``book/references.bib`` next to the build folder),
``{cite}`key``` and ``{cite:t}`key``` become author-year text, "(Guo et al., 2020)" and
"Guo et al. (2020)", as in the pages (this needs pybtex, which the book build installs).

A role or directive that cannot be resolved (unknown key, no ``text/plain``, a format spec
that does not fit the value) raises :class:`ExportError` naming the notebook and the role:
nothing is ever left raw. The module uses only the standard library.
"""
from __future__ import annotations

import argparse
import ast
import base64
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

__all__ = ["ExportError", "format_plain_text", "load_glue", "export_notebook", "export_book", "main"]

NOTE = ("*Exported from the book build: the numbers in the text are the values this notebook "
        "computed when the book was built. Run the cells to recompute them (the text does not "
        "update).*")

# A glue role: {glue}, {glue:}, {glue:any|text|md|figure|math} followed by its backtick content.
_ROLE = re.compile(r"\{glue(?::(?P<kind>[a-z]*))?\}(?P<ticks>`+)(?P<body>.+?)(?<!`)(?P=ticks)(?!`)")
# Inline code spans: glue syntax inside them is shown as code, not substituted.
_CODE_SPAN = re.compile(r"(?P<t>`+)(?:.+?)(?<!`)(?P=t)(?!`)", re.S)
_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[^}]+)\}\s*(?P<arg>.*)$")
# Directives whose body is literal text (not Markdown): leave their content alone.
_LITERAL = {"code", "code-block", "code-cell", "sourcecode", "literalinclude", "math", "raw",
            "eval-rst", "mermaid"}
_PRIORITY = ("image/svg+xml", "image/png", "image/jpeg", "image/gif", "text/html",
             "text/markdown", "text/latex", "text/plain")
_IMAGE_EXT = {"image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}
_GLUE_PREFIX = "application/papermill.record/"


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


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


_CITE = re.compile(r"\{cite(?::(?P<kind>[a-z]+))?\}`(?P<keys>[^`]+)`")


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


class _Renderer:
    """Substitutes the glue syntax of one notebook's Markdown cells."""

    def __init__(self, name: str, glue: dict[str, dict], other=None, bib=None):
        self.name = name
        self.bib = bib
        self.glue = glue
        self.other = other or (lambda doc: None)   # doc path -> glue dict of another notebook
        self.attachments: dict[str, dict] = {}

    def fail(self, role: str, why: str):
        raise ExportError(f"{self.name}: cannot resolve {role}: {why}")

    def lookup(self, key: str, role: str) -> dict:
        key = key.strip()
        glue = self.glue
        if "::" in key:
            doc, key = key.split("::", 1)
            glue = self.other(doc.strip())
            if glue is None:
                self.fail(role, f"no executed notebook {doc.strip()!r} to glue from")
        if key not in glue:
            self.fail(role, f"no glued value named {key!r}")
        return glue[key]

    # -- values -------------------------------------------------------------------------
    def attach(self, mime: str, payload) -> str:
        raw = _text(payload)
        digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]
        fname = f"glue-{digest}.{_IMAGE_EXT[mime]}"
        if mime == "image/svg+xml":   # attachments hold base64 for every image type
            raw = base64.b64encode(raw.encode("utf-8")).decode("ascii")
        self.attachments[fname] = {mime: raw.replace("\n", "")}
        return f"attachment:{fname}"

    def best(self, entry: dict, role: str, inline: bool, caption: str = "") -> str:
        data = entry["data"]
        for mime in _PRIORITY:
            if mime in data:
                break
        else:
            self.fail(role, f"the value has no output to show (mimes: {sorted(data)})")
        value = _text(data[mime])
        if mime in _IMAGE_EXT:
            alt = " ".join(caption.split()) or "figure"
            image = f"![{alt}]({self.attach(mime, data[mime])})"
            return image if inline or not caption else f"{image}\n\n{caption}"
        if mime == "text/html":
            return " ".join(value.split()) if inline else value.strip()
        if mime == "text/markdown":
            return value.strip()
        if mime == "text/latex":
            body = value.strip().strip("$").strip()
            return f"${body}$" if inline else f"$$\n{body}\n$$"
        return format_plain_text(value, "")

    # -- roles --------------------------------------------------------------------------
    def role(self, match: re.Match) -> str:
        role = match.group(0)
        kind, body = match.group("kind") or "any", match.group("body")
        if kind == "text":
            m = re.search(r"(?<!:):([^:]*)$", body)          # key:spec, doc::key:spec, doc::key
            key, spec = (body[:m.start()], m.group(1)) if m else (body, "s")
            entry = self.lookup(key, role)
            if "text/plain" not in entry["data"]:
                self.fail(role, f"{key.strip()!r} has no text/plain value")
            try:
                return format_plain_text(_text(entry["data"]["text/plain"]), spec)
            except (ValueError, TypeError, OverflowError) as exc:
                self.fail(role, f"format spec {spec!r} does not fit {_text(entry['data']['text/plain'])!r} ({exc})")
        if kind == "md":
            key = body.rsplit(":", 1)[0] if re.search(r"(?<!:):(commonmark|gfm|myst)$", body) else body
            entry = self.lookup(key, role)
            if "text/markdown" not in entry["data"]:
                self.fail(role, f"{key.strip()!r} has no text/markdown value")
            return _text(entry["data"]["text/markdown"]).strip()
        if kind in ("any", "figure"):
            return self.best(self.lookup(body, role), role, inline=True)
        self.fail(role, f"unknown glue role kind {kind!r}")

    def cite(self, match: re.Match) -> str:
        keys = [k.strip() for k in match.group("keys").split(",") if k.strip()]
        unknown = [k for k in keys if k not in self.bib]
        if unknown:
            self.fail(match.group(0), f"no bibliography entry {unknown}")
        if (match.group("kind") or "p").startswith("t"):          # textual: Guo et al. (2020)
            return "; ".join(f"{self.bib[k][0]} ({self.bib[k][1]})" for k in keys)
        return "(" + "; ".join(f"{self.bib[k][0]}, {self.bib[k][1]}" for k in keys) + ")"

    def inline(self, text: str) -> str:
        out, pos = [], 0

        def plain(segment: str):
            bad = re.search(r"\{glue(:[a-z]*)?\}\S*", segment)
            if bad:
                self.fail(bad.group(0), "malformed glue role")
            out.append(segment)

        while True:
            # the earliest of: a glue role, a citation role (with a bibliography), a code span
            found = [(m.start(), order, m, how) for order, (m, how) in enumerate([
                (_ROLE.search(text, pos), self.role),
                (_CITE.search(text, pos) if self.bib is not None else None, self.cite),
                (_CODE_SPAN.search(text, pos), lambda m: m.group(0))]) if m is not None]
            if not found:
                plain(text[pos:])
                break
            _, _, match, how = min(found, key=lambda f: f[:2])
            plain(text[pos:match.start()])
            out.append(how(match))        # a code span is kept verbatim
            pos = match.end()
        return "".join(out)

    # -- directives and blocks ----------------------------------------------------------
    def directive(self, kind: str, arg: str, body: list[str], head: str) -> str:
        options, content = {}, []
        for line in body:
            m = re.match(r"^\s*:(?P<k>[\w-]+):\s*(?P<v>.*)$", line)
            if m and not content:
                options[m.group("k")] = m.group("v")
            else:
                content.append(line)
        role = f"{head.strip()} (glue directive)"
        entry = self.lookup(arg, role)
        caption = self.markdown("\n".join(content).strip())
        if kind == "md":
            if "text/markdown" not in entry["data"]:
                self.fail(role, f"{arg.strip()!r} has no text/markdown value")
            return _text(entry["data"]["text/markdown"]).strip()
        if kind == "math":
            data = entry["data"]
            if "text/latex" not in data:
                self.fail(role, f"{arg.strip()!r} has no text/latex value")
            return self.best({"data": {"text/latex": data["text/latex"]}}, role, inline=False)
        if kind in ("any", "", "figure"):
            return self.best(entry, role, inline=False, caption=caption if kind == "figure" else "")
        self.fail(role, f"unknown glue directive {{glue:{kind}}}")

    def markdown(self, source: str) -> str:
        lines = source.split("\n")
        out: list[str] = []
        para: list[str] = []
        i = 0

        def flush():
            if para:
                out.append(self.inline("\n".join(para)))
                para.clear()

        while i < len(lines):
            m = _FENCE_OPEN.match(lines[i])
            if not m:
                para.append(lines[i])
                i += 1
                continue
            flush()
            fence = m.group("fence")
            close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j]):
                j += 1
            body = lines[i + 1:j]
            d = _DIRECTIVE.match(m.group("info").strip())
            name = d.group("name") if d else None
            if name is not None and (name == "glue" or name.startswith("glue:")):
                out.append(self.directive(name.partition(":")[2], d.group("arg"), body, lines[i]))
            elif name is None or name in _LITERAL:          # code block: verbatim
                out.extend(lines[i:j + 1])
            else:                                            # a directive whose body is Markdown
                out.append(lines[i])
                out.append(self.markdown("\n".join(body)))
                if j < len(lines):
                    out.append(lines[j])
            i = j + 1
        flush()
        return "\n".join(out)


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
                                       and all(k.startswith(_GLUE_PREFIX) for k in o.get("data", {})))]
            for o in cell["outputs"]:
                o.get("metadata", {}).pop("scrapbook", None)
        elif cell.get("cell_type") == "markdown":
            renderer = _Renderer(name, glue, other, bib)
            cell["source"] = renderer.markdown(_text(cell.get("source", "")))
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
