"""Shared fixtures for the skdtutor test suite."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# The suite works on tiny tensors: intra-op threads buy nothing and, on a busy
# 2-core machine, OpenMP contention makes each small op ~1000x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Point the teacher cache and the torchvision data root at per-session temp dirs.

    No test may read or write ``~/.cache``; subprocesses inherit the environment.
    """
    saved = {k: os.environ.get(k) for k in ("SKDTUTOR_CACHE", "SKDTUTOR_DATA")}
    os.environ["SKDTUTOR_CACHE"] = str(tmp_path_factory.mktemp("skdtutor_cache"))
    os.environ["SKDTUTOR_DATA"] = str(tmp_path_factory.mktemp("skdtutor_data"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator per test."""
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``cuda`` when no GPU is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the whole book from a cold cache, executing every chapter; return the HTML folder.

    One build per pytest session, shared by tests/test_book.py and tests/test_browser.py.
    Set SKDTUTOR_BOOK_HTML to reuse an existing build (e.g. `_build/html`) while iterating
    on browser tests; CI (CI=true) always builds cold.
    """
    reuse = os.environ.get("SKDTUTOR_BOOK_HTML")
    if reuse and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        assert (Path(reuse) / "index.html").exists(), f"SKDTUTOR_BOOK_HTML={reuse} holds no index.html"
        return Path(reuse)
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, SKDTUTOR_CACHE=str(out / "skdtutor-cache"))
    # jupyter-book 1 has no `python -m jupyter_book`; call its CLI entry point in this Python.
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(ROOT),
           "--path-output", str(out), "-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    (out / "build.log").write_text(log)
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    return out / "_build" / "html"
