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


def package_version() -> str:
    """The version in skdtutor/__init__.py, read as text (pyproject.toml takes it from there)."""
    text = (ROOT / "skdtutor" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.name)
def test_first_code_cell_installs_the_book_version_from_the_configured_repository(path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    nb = json.loads(path.read_text())
    assert nb["cells"][0]["cell_type"] == "markdown" and \
        "".join(nb["cells"][0]["source"]).startswith("# "), \
        f"{path.name}: the title must come first (no toggle bar above it)"
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(first["source"])
    assert "import skdtutor" in source and "except ImportError" in source, \
        f"{path.name}: the first code cell must install skdtutor only when it is missing"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), \
        f"{path.name}: the install cell is bookkeeping; tag it remove-cell"
    sources = re.findall(r"git\+(https://[^\s\"'@]+)@([^\s\"']+)", source)
    assert sources, f"{path.name}: the first cell installs from no pinned git URL (URL@tag)"
    for found_url, ref in sources:
        assert found_url.rstrip("/").removesuffix(".git") == url, \
            f"{path.name}: installs from {found_url}, but _config.yml's repository is {url}"
        assert ref == "v" + package_version(), \
            f"{path.name}: installs {ref}, but the package is version {package_version()}"
    assert "pip install -e ." in source and "fork" in source and "raise RuntimeError" in source, \
        f"{path.name}: a failed install must raise one error naming both ways out"


def test_install_cells_are_identical():
    cells = {p.name: "".join(next(c for c in json.loads(p.read_text())["cells"]
                                  if c["cell_type"] == "code")["source"]) for p in chapters()}
    assert len(set(cells.values())) == 1, "the chapters' install cells differ"


def test_install_cell_raises_a_clear_error_when_pip_fails(tmp_path):
    """Run the install cell with pip failing and skdtutor not importable."""
    import subprocess
    import sys

    source = "".join(next(c for c in json.loads(chapters()[0].read_text())["cells"]
                          if c["cell_type"] == "code")["source"])
    fake = tmp_path / "fakebin"
    fake.mkdir()
    # a python whose "-m pip" fails and that cannot import skdtutor
    script = ("import builtins, subprocess, sys\n"
              "real_import = builtins.__import__\n"
              "def no_skdtutor(name, *a, **k):\n"
              "    if name == 'skdtutor': raise ImportError(name)\n"
              "    return real_import(name, *a, **k)\n"
              "builtins.__import__ = no_skdtutor\n"
              "subprocess.call = lambda *a, **k: 1\n"
              "exec(compile(open(sys.argv[1]).read(), 'cell', 'exec'))\n")
    (tmp_path / "cell.py").write_text(source)
    (tmp_path / "run.py").write_text(script)
    result = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "cell.py")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: could not install") and "pip install -e ." in last \
        and "fork" in last, result.stderr


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
