"""The Binder environment (.binder/): CPU torch at the book's pins, runtime dependencies only."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_AND_BUILD_TOOLS = {"pytest", "hypothesis", "playwright", "jupyter-book", "sphinx", "pyyaml",
                        "sphinx-mathjax-offline", "beautifulsoup4", "nbformat"}


def requirements(path: Path) -> dict[str, str]:
    """{normalised name: version specifier} of a requirements file (options and `-e .` skipped)."""
    reqs = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, spec = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^]]*\])?\s*(.*)$", line).groups()
        reqs[re.sub(r"[-_.]+", "-", name).lower()] = spec.replace(" ", "")
    return reqs


def test_binder_pins_the_cpu_build_of_the_books_torch():
    book, binder = requirements(ROOT / "requirements.txt"), requirements(ROOT / ".binder" / "requirements.txt")
    for name in ("torch", "torchvision"):
        pinned = re.fullmatch(r"==([0-9.]+)(\+\w+)?", book[name]).group(1)
        assert binder[name] == f"=={pinned}+cpu", (name, binder[name], pinned)
    text = (ROOT / ".binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^-e \.$", text, re.M), "Binder must install the package itself"


def test_binder_holds_runtime_dependencies_only():
    book, binder = requirements(ROOT / "requirements.txt"), requirements(ROOT / ".binder" / "requirements.txt")
    assert not TEST_AND_BUILD_TOOLS & set(binder), sorted(TEST_AND_BUILD_TOOLS & set(binder))
    # Everything else the book's requirements name is there, with the same bound.
    for name, spec in book.items():
        if name not in TEST_AND_BUILD_TOOLS and name not in ("torch", "torchvision"):
            assert binder.get(name) == spec, (name, spec, binder.get(name))


def test_binder_pins_python():
    assert (ROOT / ".binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_start_keeps_sweeps_in_one_process():
    """Binder's memory limit: .binder/start sets SKDTUTOR_WORKERS=1 and then runs the server."""
    import os
    import subprocess

    start = ROOT / ".binder" / "start"
    assert os.access(start, os.X_OK)
    out = subprocess.run([str(start), "sh", "-c", 'echo "$SKDTUTOR_WORKERS"'], capture_output=True,
                         text=True, timeout=30, env={k: v for k, v in os.environ.items()
                                                     if k != "SKDTUTOR_WORKERS"})
    assert out.returncode == 0 and out.stdout.strip() == "1"
