"""Shared fixtures for the skdtutor test suite."""
from __future__ import annotations

import os

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
