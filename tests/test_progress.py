"""Tests of the progress switch (skdtutor.progress): when a bar shows, one bar per long call,
no tqdm (and no TqdmWarning) when no bar shows, and nothing from a headless kernel."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from skdtutor import progress

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_env(monkeypatch):
    for name in ("SKDTUTOR_PROGRESS", "SKDTUTOR_NO_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal


def fake_kernel(monkeypatch, allow_stdin):
    """An IPython whose kernel's current request has ``allow_stdin`` (as ipykernel records it)."""
    kernel = types.SimpleNamespace(get_parent=lambda: {"content": {"allow_stdin": allow_stdin}})
    shell = types.SimpleNamespace(kernel=kernel)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_explicit_values_and_the_environment(no_env, monkeypatch):
    assert progress.show_progress(True) and not progress.show_progress(False)
    assert not progress.show_progress("auto")  # no terminal, no kernel
    monkeypatch.setenv("SKDTUTOR_PROGRESS", "1")
    assert progress.show_progress("auto")
    monkeypatch.setenv("SKDTUTOR_NO_PROGRESS", "1")  # wins over everything, True included
    assert not progress.show_progress("auto") and not progress.show_progress(True)
    assert isinstance(progress.progress_bar(5, "x", True), progress._NoBar)
    with pytest.raises(ValueError, match="'auto'"):
        progress.show_progress("yes")


@pytest.mark.parametrize("allow_stdin", [True, False])
def test_auto_follows_the_kernels_frontend(no_env, monkeypatch, allow_stdin):
    fake_kernel(monkeypatch, allow_stdin)
    assert progress.in_interactive_kernel() is allow_stdin
    assert progress.show_progress("auto") is allow_stdin


class Recorder:
    bars: list = []

    def __init__(self, total, desc):
        self.total, self.desc, self.n, self.closed = total, desc, 0, False
        Recorder.bars.append(self)

    def update(self, n=1):
        self.n += n

    def refresh(self):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        self.closed = True


@pytest.mark.parametrize("batched", [True, False])
def test_a_long_call_shows_one_bar_over_all_its_epochs(no_env, monkeypatch, batched):
    from skdtutor import data
    from skdtutor.config import ModelSpec, TrainConfig
    from skdtutor.losses import CE
    from skdtutor.runs import plan, run_students

    monkeypatch.setattr(progress, "_tqdm", Recorder)
    Recorder.bars = []
    digits = data.load("digits")
    run_students(digits, {}, ModelSpec("mlp", 8, 1), plan([CE()], [0, 1]),
                 TrainConfig(epochs=2, device="cpu"), batched=batched, progress=True)
    assert len(Recorder.bars) == 1
    bar = Recorder.bars[0]
    epochs = 2 * (1 if batched else 2)  # one stacked run, or one run per member
    assert (bar.total, bar.n, bar.closed) == (epochs, epochs, True)
    Recorder.bars = []
    run_students(digits, {}, ModelSpec("mlp", 8, 1), plan([CE()], [0]), TrainConfig(epochs=1, device="cpu"),
                 batched=batched)  # "auto", headless: no bar at all
    assert Recorder.bars == []


def test_no_bar_means_no_tqdm_frontend_and_no_warning():
    code = textwrap.dedent("""
        import sys, warnings
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            from skdtutor import data, train
            from skdtutor.config import ModelSpec
            d = data.load("digits")
            for p in (False, "auto"):
                train.train_teacher(ModelSpec("mlp", 8, 1).build(d, seed=0), d, 1, device="cpu", progress=p)
        print(sorted(type(w.message).__name__ for w in caught if "tqdm" in type(w.message).__name__.lower()))
        print(sorted(m for m in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook") if m in sys.modules))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKDTUTOR_PROGRESS")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "[]"], proc.stdout
    assert "it/s" not in proc.stderr and "%|" not in proc.stderr


def test_a_headless_kernel_shows_nothing_and_a_frontend_request_shows_a_bar():
    """The real signal, in a real ipykernel: nbclient (what the book build runs) sends
    allow_stdin=False, a Jupyter/Colab frontend sends True."""
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKDTUTOR_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(REPO))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        seen = {}
        for allow in (False, True):
            outputs = []
            kc.execute_interactive("from skdtutor.progress import show_progress; print(show_progress())",
                                   allow_stdin=allow, timeout=120,
                                   output_hook=lambda m: outputs.append(m))
            seen[allow] = "".join(m["content"].get("text", "") for m in outputs
                                  if m["msg_type"] == "stream").strip()
        assert seen == {False: "False", True: "True"}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
