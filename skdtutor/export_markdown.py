"""Substituting glue and citation syntax in one notebook's Markdown: :class:`MarkdownRenderer`.

The writing half of :mod:`skdtutor.export` calls it for every Markdown cell. What replaces what:

* ``{glue:text}`key:fmt``` -> ``format_plain_text`` of the glued ``text/plain`` (exactly what
  myst-nb does: the repr is read back with ``ast.literal_eval``, then Python's ``format``);
* ``{glue:md}`key``` -> the glued Markdown;
* ``{glue}`key```, ``{glue:}`key```, ``{glue:any}`key``` and the ``{glue}`` / ``{glue:figure}``
  / ``{glue:md}`` / ``{glue:math}`` directives -> the best output the value has: an image is
  embedded as an attachment of the Markdown cell (a figure's caption follows it), an HTML
  table is written as HTML, Markdown as Markdown, LaTeX as math, else the plain text;
* with a bibliography, ``{cite}`key``` and ``{cite:t}`key``` -> author-year text,
  "(Guo et al., 2020)" and "Guo et al. (2020)", as in the pages.

Glue syntax inside inline code spans and literal blocks (code, math, raw, ...) is left as
written; the bodies of other directives (admonitions, dropdowns) are Markdown and are
substituted. A ``{glue:text}`doc::key``` reference reads another notebook's glue. Anything
that cannot be resolved raises :class:`~skdtutor.export_glue.ExportError`: nothing is ever
left raw.
"""
from __future__ import annotations

import base64
import hashlib
import re

from .export_glue import ExportError, as_text, format_plain_text

__all__ = ["MarkdownRenderer"]

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
_CITE = re.compile(r"\{cite(?::(?P<kind>[a-z]+))?\}`(?P<keys>[^`]+)`")


class MarkdownRenderer:
    """Substitutes the glue (and, given ``bib``, citation) syntax of one notebook's Markdown.

    ``name`` names the notebook in error messages; ``glue`` is its glue data
    (:func:`~skdtutor.export_glue.load_glue`); ``other(doc)`` returns another notebook's glue
    data or None; ``bib`` is :func:`~skdtutor.export_glue.load_bib`'s mapping. Call
    :meth:`markdown` per cell; images it embedded collect in :attr:`attachments`."""

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
        raw = as_text(payload)
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
        value = as_text(data[mime])
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
                return format_plain_text(as_text(entry["data"]["text/plain"]), spec)
            except (ValueError, TypeError, OverflowError) as exc:
                self.fail(role, f"format spec {spec!r} does not fit {as_text(entry['data']['text/plain'])!r} ({exc})")
        if kind == "md":
            key = body.rsplit(":", 1)[0] if re.search(r"(?<!:):(commonmark|gfm|myst)$", body) else body
            entry = self.lookup(key, role)
            if "text/markdown" not in entry["data"]:
                self.fail(role, f"{key.strip()!r} has no text/markdown value")
            return as_text(entry["data"]["text/markdown"]).strip()
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
            return as_text(entry["data"]["text/markdown"]).strip()
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
