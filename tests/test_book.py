"""The book: structure checks (fast) and a full cold build that executes every chapter (slow)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files


def resolve(entry: str) -> Path | None:
    for ext in (".ipynb", ".md"):
        if (ROOT / (entry + ext)).exists():
            return ROOT / (entry + ext)
    return None


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def test_every_toc_entry_exists():
    missing = [e for e in toc_files() if resolve(e) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_chapter_is_in_the_toc():
    listed = {resolve(e) for e in toc_files()}
    orphans = [p.name for p in chapters() if p not in listed]
    assert not orphans, f"notebooks not listed in _toc.yml: {orphans}"


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.name)
def test_first_code_cell_installs_from_the_configured_repository(path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(first["source"])
    assert "import skdtutor" in source and "except ImportError" in source, \
        f"{path.name}: the first code cell must install skdtutor only when it is missing"
    urls = re.findall(r"git\+(https://[^\s\"'@]+)", source)
    assert urls, f"{path.name}: the first cell installs from no git URL"
    assert all(u.rstrip("/").removesuffix(".git") == url for u in urls), \
        f"{path.name}: installs from {urls}, but _config.yml's repository is {url}"


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.name)
def test_chapter_has_goals_takeaways_and_exercises(path):
    nb = json.loads(path.read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown").lower()
    for heading in ("learning goals", "takeaways", "exercises"):
        assert heading in text, f"{path.name}: no '{heading}' section"


@pytest.mark.book
def test_book_builds_and_renders_every_page(built_book):
    for entry in toc_files():
        page = built_book / (entry + ".html")
        assert page.exists(), f"{page} was not rendered"
        html = page.read_text()
        # myst-nb marks cell errors and stderr streams with these classes
        assert "output traceback" not in html and 'class="output stderr"' not in html, \
            f"{page.name} shows an error or stderr output"
    for nb in chapters():
        html = (built_book / "book" / (nb.stem + ".html")).read_text()
        assert "colab.research.google.com" in html, f"{nb.stem}: no Colab launch button"
        assert nb.name in html, f"{nb.stem}: the launch buttons do not point at {nb.name}"
