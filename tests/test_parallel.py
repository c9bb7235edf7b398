"""Tests of skdtutor.parallel: a stacked sweep split over worker processes."""
from __future__ import annotations

import os

import pytest
import torch

from skdtutor import data as data_mod
from skdtutor import parallel
from skdtutor.config import ModelSpec, TrainConfig
from skdtutor.losses import CE, KD, SKD
from skdtutor.sweep import SweepMember, distill_sweep
from skdtutor.train import TeacherLogits
from scaled_loss import ScaledCE  # tests/scaled_loss.py: a worker can unpickle it

SPEC = ModelSpec("mlp", width=8, depth=1)
CFG = TrainConfig(epochs=2, lr=3e-3, batch_size=256, device="cpu", threads=1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


@pytest.fixture(scope="module")
def teacher(digits):
    g = torch.Generator().manual_seed(0)
    return TeacherLogits(*(torch.randn(len(getattr(digits, f"y_{s}")), 10, generator=g) * 4.0
                           for s in ("train", "val", "test")))


MEMBERS = [SweepMember(loss, seed) for loss in (CE(), KD(T=4.0), SKD(T=2.0)) for seed in (0, 1, 2)]




def test_two_processes_give_the_numbers_of_one_stack(digits, teacher, monkeypatch):
    """9 members split 4 here + 5 in a worker: every member's history and weights equal
    those of one stacked sweep in this process, to float32 rounding."""
    monkeypatch.delenv("SKDTUTOR_WORKERS", raising=False)
    one = distill_sweep(lambda: SPEC.build(digits), teacher, digits, MEMBERS, config=CFG, progress=False)
    split = parallel.stacked_sweep(SPEC, teacher, digits, MEMBERS, CFG, progress=False, workers=2)
    try:
        assert len(split) == len(MEMBERS)
        for a, b in zip(one, split):
            assert b.final["train_loss"] == pytest.approx(a.final["train_loss"], rel=1e-5)
            assert b.final["test_acc"] == pytest.approx(a.final["test_acc"], abs=1e-9)
            for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
                torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    finally:
        parallel.shutdown()


def test_how_many_processes(monkeypatch):
    monkeypatch.delenv("SKDTUTOR_WORKERS", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert parallel.sweep_workers(40, torch.device("cuda"), "auto") == 1       # a GPU: one process
    assert parallel.sweep_workers(40, CPU, 3) == 3
    assert parallel.sweep_workers(11, CPU, 3) == 11 // parallel.MIN_GROUP     # no group below MIN_GROUP
    assert parallel.sweep_workers(parallel.MIN_GROUP * 2 - 1, CPU, 8) == 1
    cores = parallel.available_cores()
    auto = parallel.sweep_workers(1000, CPU, "auto", threads=1)
    assert auto == max(1, min(parallel.MAX_AUTO_WORKERS, cores))
    assert parallel.sweep_workers(1000, CPU, "auto", threads=cores) == 1        # threads fill the cores
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parallel.sweep_workers(1000, CPU, "auto", threads=1) == 1            # torchrun
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("SKDTUTOR_WORKERS", "1")
    assert parallel.sweep_workers(1000, CPU, "auto", threads=1) == 1
    monkeypatch.setenv("SKDTUTOR_WORKERS", "4")
    assert parallel.sweep_workers(1000, torch.device("cuda"), "auto") == 1    # never on a GPU
    assert parallel.sweep_workers(1000, CPU, "auto", steps=10) == 4          # explicit: no step rule
    monkeypatch.setenv("SKDTUTOR_WORKERS", "auto")                            # the same as unset
    assert parallel.sweep_workers(1000, CPU, "auto", threads=1, steps=10) == 1
    monkeypatch.setenv("SKDTUTOR_WORKERS", "two")
    with pytest.raises(ValueError, match="SKDTUTOR_WORKERS"):
        parallel.sweep_workers(1000, CPU, "auto")
    monkeypatch.delenv("SKDTUTOR_WORKERS")
    with pytest.raises(ValueError, match="at least 1"):
        parallel.sweep_workers(1000, CPU, 0)


def test_auto_keeps_a_short_sweep_in_one_process(digits, teacher, monkeypatch):
    """Below MIN_SPLIT_STEPS member-steps "auto" starts no worker (the split would cost more)."""
    monkeypatch.delenv("SKDTUTOR_WORKERS", raising=False)
    monkeypatch.setattr(parallel, "_get_workers", lambda n: pytest.fail("started a worker"))
    steps = len(MEMBERS) * CFG.epochs * -(-len(digits.y_train) // CFG.batch_size)
    assert steps < parallel.MIN_SPLIT_STEPS
    hs = parallel.stacked_sweep(SPEC, teacher, digits, MEMBERS, CFG, progress=False)
    assert len(hs) == len(MEMBERS)


def test_available_cores_is_within_the_machine():
    cores = parallel.available_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)


@pytest.mark.parametrize("n, k", [(9, 2), (10, 3), (4, 4), (21, 2)])
def test_groups_cover_every_member_once_in_order(n, k):
    groups = parallel._groups(n, k)
    assert len(groups) == k and [i for g in groups for i in g] == list(range(n))
    assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_a_script_without_a_main_guard_can_split_a_sweep(tmp_path):
    """The workers never re-import the caller's __main__ (multiprocessing's spawn would)."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import torch\n"
        "from skdtutor import data, parallel\n"
        "from skdtutor.config import ModelSpec, TrainConfig\n"
        "from skdtutor.losses import CE\n"
        "from skdtutor.sweep import SweepMember\n"
        "d = data.load('digits')\n"
        "cfg = TrainConfig(epochs=1, lr=3e-3, batch_size=256, device='cpu', threads=1)\n"
        "hs = parallel.stacked_sweep(ModelSpec('mlp', 4, 1), None, d, [SweepMember(CE(), s) for s in range(8)],\n"
        "                            cfg, progress=False, workers=2)\n"
        "print('members', len(hs))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["members", "8"]


def test_a_failing_worker_raises_its_traceback_here(digits):
    worker = parallel._get_workers(1)[0]
    try:
        worker.send(parallel._to_bytes((SPEC, None, digits, [SweepMember(KD(T=4.0), 0)], CFG, None)))
        with pytest.raises(RuntimeError, match="sweep worker process failed"):
            worker.receive()  # KD without a teacher fails in the worker
        assert worker.alive()  # and the worker serves the next job
    finally:
        parallel.shutdown()


def test_a_split_sweep_raises_the_workers_warnings_and_keeps_the_random_state(digits):
    """Members diverging in the worker warn here as those in this process do, and the global
    random state after the sweep is the one before it, split or not."""
    members = [SweepMember(ScaledCE(float("inf") if seed % 2 else 1.0), seed) for seed in range(8)]
    try:
        for workers in (1, 2):
            torch.manual_seed(123)
            expected = torch.rand(3)
            torch.manual_seed(123)
            with pytest.warns(RuntimeWarning) as record:
                hs = parallel.stacked_sweep(SPEC, None, digits, members, CFG, progress=False,
                                            workers=workers)
            assert torch.equal(torch.rand(3), expected), workers
            assert [h.diverged_epoch is not None for h in hs] == [seed % 2 == 1 for seed in range(8)]
            diverged = [w for w in record if "diverged" in str(w.message)]
            assert len(diverged) == 4, (workers, [str(w.message) for w in record])
    finally:
        parallel.shutdown()
