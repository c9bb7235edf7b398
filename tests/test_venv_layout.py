"""A virtual environment inside the checkout changes nothing in the book build or in pytest.

`python3 -m venv .venv` inside the checkout puts site-packages (with their own .rst/.md files
and test modules) under the project root. The book's `exclude_patterns` must prune them from
Sphinx's source discovery, and pytest's `norecursedirs` must keep their tests out.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a venv (or a tox/nox env) inside the checkout looks like to a tool that walks the tree.
VENV_FILES = [
    ".venv/lib/python3.11/site-packages/sklearn/datasets/descr/iris.rst",
    ".venv/lib/python3.11/site-packages/pkg/README.md",
    "venv/lib/python3.11/site-packages/pkg/notes.md",
    "env/lib/python3.11/site-packages/pkg/index.rst",
    "my-env/lib/python3.11/site-packages/pkg/guide.ipynb",
    ".tox/py311/lib/python3.11/site-packages/pkg/doc.md",
]


def fake_tree(root: Path, files, text="broken *rst `reference\n"):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_sphinx_discovery_skips_virtual_environments(tmp_path):
    from jupyter_book.config import get_final_config
    from sphinx.project import Project

    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    fake_tree(tmp_path, VENV_FILES)
    fake_tree(tmp_path, ["book/intro.md"], "# Intro\n")
    config, _ = get_final_config(user_yaml=tmp_path / "_config.yml", sourcedir=tmp_path,
                                 cli_config={"latex_individualpages": False})
    suffixes = config.get("source_suffix") or {".md": "markdown", ".ipynb": "jupyter_notebook", ".rst": "restructuredtext"}
    assert {".md", ".ipynb", ".rst"} <= set(suffixes)
    # Sphinx's own discovery (what `jupyter-book build .` reads), with the book's patterns.
    found = Project(str(tmp_path), suffixes).discover(exclude_paths=config["exclude_patterns"])
    assert found == {"book/intro"}, f"Sphinx would read files outside the book: {sorted(found)}"


def test_pytest_does_not_collect_from_virtual_environments(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = "def test_bad():\n    raise AssertionError('collected from a virtual environment')\n"
    fake_tree(tmp_path, ["tests/test_ok.py"], "def test_ok():\n    pass\n")
    # No pyvenv.cfg: pytest's own virtualenv detection must not be what saves us.
    fake_tree(tmp_path, [".venv/lib/python3.11/site-packages/pkg/test_bad.py",
                         "venv/lib/python3.11/site-packages/pkg/test_bad.py",
                         "env/test_bad.py",
                         "my-env/lib/python3.11/site-packages/pkg/test_bad.py",
                         "_build/test_bad.py"], bad)
    for args in ([], ["."]):   # the configured testpaths, and an explicit walk of the whole tree
        result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                 *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        collected = [line for line in result.stdout.splitlines() if "::" in line]
        assert result.returncode == 0, result.stdout + result.stderr
        assert collected == ["tests/test_ok.py::test_ok"], result.stdout


@pytest.mark.parametrize("folder", [".venv", "venv", "env"])
def test_config_names_the_usual_venv_folders(folder):
    import tomllib

    import yaml

    patterns = yaml.safe_load((ROOT / "_config.yml").read_text())["exclude_patterns"]
    assert folder in patterns
    norecurse = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["norecursedirs"]
    assert folder in norecurse or (folder.startswith(".") and ".*" in norecurse)
