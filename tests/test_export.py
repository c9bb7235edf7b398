"""skdtutor.export: reader notebooks with the glued values written into the text."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from skdtutor import export

ROOT = Path(__file__).resolve().parents[1]

PREFIX = "application/papermill.record/"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()

VALUES = {  # name -> (value, spec used in the text)
    "acc": (0.97493, ".1f"),
    "params": (58314, ",d"),
    "gain": (1.25, "+.1f"),
    "loss_drop": (-3.04, "+.1f"),
    "share": (0.4683, ".0%"),
    "tiny": (0.000123456, ".1e"),
    "ratio": (123.456, ".2f"),
}


def glue_output(name, data, display=False):
    """An output cell as ``myst_nb.glue(name, value, display=display)`` writes it."""
    prefix = "" if display else PREFIX
    return {"output_type": "display_data",
            "metadata": {"scrapbook": {"name": name, "mime_prefix": prefix}},
            "data": {prefix + k: v for k, v in data.items()}}


def make_notebook(extra_md=""):
    outputs = [glue_output(name, {"text/plain": repr(value)}) for name, (value, _) in VALUES.items()]
    outputs.append(glue_output("who", {"text/plain": repr("the student")}))
    outputs.append(glue_output("verdict", {"text/markdown": "**smaller**", "text/plain": "<Markdown>"}))
    outputs.append(glue_output("fig", {"image/png": PNG, "text/plain": "<Figure size 640x480>"}))
    outputs.append({"output_type": "stream", "name": "stdout", "text": "trained\n"})
    text = " ".join(f"{name}={{glue:text}}`{name}:{spec}`" for name, (_, spec) in VALUES.items())
    md = (f"# Title\n\nValues: {text}. Who: {{glue:text}}`who`. The gap is {{glue:md}}`verdict`.\n\n"
          "Shown as code, not substituted: ``{glue:text}`acc:.1f` ``.\n\n"
          "```python\nprint('{glue:text}`acc:.1f`')\n```\n\n"
          ":::{note}\nInside a note: {glue:text}`params:,d`.\n:::\n\n"
          "```{glue:figure} fig\n:name: fig-one\nThe caption, {glue:text}`acc:.2f`.\n```\n\n"
          "Inline figure {glue:}`fig` too." + extra_md)
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"id": "c1", "cell_type": "code", "execution_count": 1, "metadata": {}, "source": "glue(...)",
                       "outputs": outputs},
                      {"id": "c2", "cell_type": "markdown", "metadata": {}, "source": md}]}


def exported_markdown(nb):
    out = export.export_notebook(nb, export.load_glue(nb), name="book/01_x.ipynb")
    return out, "\n".join(c["source"] for c in out["cells"] if c["cell_type"] == "markdown")


def test_roles_become_formatted_values():
    out, md = exported_markdown(make_notebook())
    for name, (value, spec) in VALUES.items():
        assert f"{name}={format(value, spec)}" in md
    assert "Who: the student." in md and "The gap is **smaller**." in md
    assert "Inside a note: 58,314." in md
    assert "``{glue:text}`acc:.1f` ``" in md                  # code span kept
    assert "print('{glue:text}`acc:.1f`')" in md               # code block kept
    assert md.replace("``{glue:text}`acc:.1f` ``", "").replace("print('{glue:text}`acc:.1f`')", "").count("{glue") == 0


def test_figures_become_attachments_with_caption():
    out, md = exported_markdown(make_notebook())
    cell = out["cells"][-1]
    nbformat.validate(nbformat.from_dict(out))                  # a valid v4 notebook
    (fname, bundle), = cell["attachments"].items()
    assert bundle == {"image/png": PNG}
    assert f"![The caption, {format(0.97493, '.2f')}.](attachment:{fname})" in md
    assert f"\n\nThe caption, {format(0.97493, '.2f')}." in md
    assert f"Inline figure ![figure](attachment:{fname}) too." in md


def test_outputs_kept_and_hidden_glue_records_dropped():
    out, _ = exported_markdown(make_notebook())
    code = out["cells"][1]
    assert code["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "trained\n"}]
    assert out["cells"][0]["source"] == export.NOTE


def test_displayed_glue_output_is_kept_without_scrapbook():
    nb = make_notebook()
    nb["cells"][0]["outputs"].append(glue_output("shown", {"text/plain": "7"}, display=True))
    nb["cells"][1]["source"] += " Shown {glue:text}`shown:d`."
    out, md = exported_markdown(nb)
    assert "Shown 7." in md
    assert {"output_type": "display_data", "metadata": {}, "data": {"text/plain": "7"}} in out["cells"][1]["outputs"]


@pytest.mark.parametrize("role, why", [
    ("{glue:text}`nope:.1f`", "no glued value named 'nope'"),
    ("{glue:md}`acc`", "no text/markdown"),
    ("{glue:text}`who:.1f`", "format spec"),
    ("{glue:text}`other::acc`", "no executed notebook"),
    ("{glue:text}`acc:.1f", "malformed"),
])
def test_unresolvable_role_raises_naming_notebook_and_role(role, why):
    with pytest.raises(export.ExportError) as info:
        exported_markdown(make_notebook(extra_md=f"\n\nBad: {role}."))
    message = str(info.value)
    assert "book/01_x.ipynb" in message and why in message
    assert role.split("`")[0] in message


BIB = """@article{guo2020spherical, author = {Guo, Jia and Chen, Minghao and Hu, Yao}, title = {SKD}, year = {2020}}
@article{cho2019efficacy, author = {Cho, Jang Hyun and Hariharan, Bharath}, title = {Efficacy}, year = {2019}}
@misc{mdistiller2022, author = {{MEGVII Research}}, title = {mdistiller}, year = {2022}}
"""


def test_citations_become_author_year(tmp_path):
    (tmp_path / "refs.bib").write_text(BIB)
    bib = export.load_bib(tmp_path / "refs.bib")
    nb = make_notebook(extra_md="\n\nAs {cite:t}`guo2020spherical` show {cite}`cho2019efficacy,mdistiller2022`.")
    md = export.export_notebook(nb, export.load_glue(nb), bib=bib)["cells"][-1]["source"]
    assert "As Guo et al. (2020) show (Cho and Hariharan, 2019; MEGVII Research, 2022)." in md
    with pytest.raises(export.ExportError, match="nokey"):
        nb = make_notebook(extra_md=" {cite}`nokey`")
        export.export_notebook(nb, export.load_glue(nb), bib=bib)


def test_format_plain_text_matches_myst_nb():
    from myst_nb.core.variables import format_plain_text as reference

    for text in ["0.5", "58314", "'a string'", "np.float64(0.5)", "[1, 2]", "3"]:
        for spec in ["", "s"]:
            assert export.format_plain_text(text, spec) == reference(text, spec)
    for text, spec in [("0.5", ".0%"), ("58314", ",d"), ("2", ".2f"), ("-1.5", "+.1f"), ("1e-7", ".1e")]:
        assert export.format_plain_text(text, spec) == reference(text, spec)


def write_build(root, glue_in_json):
    execute = root / "_build" / "jupyter_execute" / "book"
    execute.mkdir(parents=True)
    nb = make_notebook()
    if glue_in_json:   # what myst-nb 1.x writes: glue records moved to NAME.glue.json
        records = {o["metadata"]["scrapbook"]["name"]: o for o in nb["cells"][0]["outputs"] if "metadata" in o}
        nb["cells"][0]["outputs"] = [o for o in nb["cells"][0]["outputs"] if "metadata" not in o]
        (execute / "01_x.glue.json").write_text(json.dumps(records))
    (execute / "01_x.ipynb").write_text(json.dumps(nb))
    (root / "_build" / "html").mkdir()
    return root / "_build"


@pytest.mark.parametrize("glue_in_json", [True, False])
def test_cli_writes_html_notebooks(tmp_path, glue_in_json):
    build = write_build(tmp_path, glue_in_json)
    result = subprocess.run([sys.executable, "-m", "skdtutor.export", str(build)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    target = build / "html" / "notebooks" / "01_x.ipynb"
    assert result.stdout.strip() == str(target)
    nb = json.loads(target.read_text())
    md = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "markdown")
    assert f"params={format(58314, ',d')}" in md and f"share={format(0.4683, '.0%')}" in md


def test_cli_reports_unresolvable_role(tmp_path):
    build = write_build(tmp_path, True)
    path = build / "jupyter_execute" / "book" / "01_x.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][1]["source"] += " {glue:text}`missing_key:.2f`"
    path.write_text(json.dumps(nb))
    result = subprocess.run([sys.executable, "-m", "skdtutor.export", str(build), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "book/01_x.ipynb" in result.stderr and "{glue:text}`missing_key:.2f`" in result.stderr


@pytest.mark.book
def test_export_of_the_built_book(built_book):
    written = export.export_book(built_book.parent, bib=ROOT / "book" / "references.bib")
    assert written and all(p.parent == built_book / "notebooks" for p in written)
    chapters = sorted(p.name for p in written)
    assert any(name.startswith("01_") for name in chapters)
    for path in (built_book / "notebooks").glob("*.ipynb"):
        text = path.read_text(encoding="utf-8")
        assert "{glue" not in text, f"{path.name} still holds glue syntax"
        assert "{cite" not in text, f"{path.name} still holds citation roles"
        nbformat.validate(nbformat.reads(text, as_version=4))
