"""Data-parallel training under torchrun (skdtutor.distributed), on CPUs with 2 gloo processes.

Every claim is checked against one process computing the same thing: a DDP step's
gradients against the gradient of the batch's mean loss, written out here (uneven
shards and an empty one included); whole runs (teacher, augmented student) against
the same calls in this process; and ``compare`` under torchrun (the CLI's ``main``, in
the same torchrun start: each start costs seconds) against the same command in one
process (the same accuracies, one CSV, one table).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from skdtutor import cache, distributed, train
from skdtutor.__main__ import main as cli_main
from skdtutor.losses import KD

sys.path.insert(0, str(Path(__file__).parent))
import ddp_cases  # noqa: E402  (the cases the torchrun worker runs too)

TESTS = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in distributed.ENV_VARS:  # a child of this process is not itself a torchrun rank
        env.pop(k, None)
    return env


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [0, 1, 2, 5, 64, 65])
def test_shards_tile_the_batch_in_rank_order(world, size):
    bounds = [distributed.shard_bounds(10, 10 + size, r, world) for r in range(world)]
    assert bounds[0][0] == 10 and bounds[-1][1] == 10 + size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no overlap
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert [len(part) for part in torch.tensor_split(torch.arange(size), world)] == sizes


def test_without_torchrun_nothing_is_distributed(monkeypatch):
    for k in distributed.ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    with distributed.session("cpu", say=pytest.fail):
        assert not distributed.active() and distributed.world_size() == 1 and distributed.is_rank0()
        assert distributed.loss_scale(3, 5) == pytest.approx(3 / 5)
        assert distributed.broadcast_object({"a": 1}) == {"a": 1}
        assert torch.equal(distributed.shard_of(torch.arange(7)), torch.arange(7))
        assert distributed.in_turn(lambda: "once") == "once"


def _pretend_torchrun(monkeypatch, local_rank: int, world: int, gpus: int):
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


def test_gpus_use_nccl_and_cpus_gloo():
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"


@pytest.mark.parametrize("device, local_rank, gpus, words", [
    ("cuda:0", 0, 2, "each process uses cuda:LOCAL_RANK"),    # one GPU named for all ranks
    ("cuda", 2, 2, "LOCAL_RANK 2 has no GPU"),                 # more processes than GPUs
    ("auto", 1, 1, "LOCAL_RANK 1 has no GPU"),
    ("cuda", 0, 0, "no CUDA GPU is available"),
])
def test_a_device_that_cannot_work_under_torchrun_is_refused_before_the_group_starts(
        monkeypatch, device, local_rank, gpus, words):
    _pretend_torchrun(monkeypatch, local_rank, world=3, gpus=gpus)
    with pytest.raises(ValueError, match=words):
        with distributed.session(device):
            pytest.fail("the session started")
    assert not distributed.active()


COMPARE = ["compare", "--dataset", "digits", "--device", "cpu", "--seeds", "1", "--methods", "ce,kd",
           "--temperatures", "4", "--student-epochs", "2", "--teacher-epochs", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """One torchrun start (2 gloo ranks) of tests/ddp_worker.py: what each rank saved, then
    ``python -m skdtutor compare`` (the CLI's ``main``) in the same processes; its stdout
    and folder (the CSV and the cache)."""
    out = tmp_path_factory.mktemp("ddp")
    cli = [*COMPARE, "--cache-dir", str(out / "cache"), "--csv", str(out / "runs.csv")]
    proc = subprocess.run([*TORCHRUN, str(TESTS / "ddp_worker.py"), str(out), *cli], cwd=TESTS,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    return ranks, proc.stdout, out


@pytest.fixture(scope="module")
def ranks(launch):
    return launch[0]


@pytest.mark.parametrize("n", ddp_cases.STEP_SIZES)
def test_a_ddp_step_has_the_gradient_of_the_global_batch_mean(ranks, n):
    """Shards of 3 and 2 samples (n=5) and of 1 and 0 (n=1): DDP's averaged gradient equals
    the gradient of (1/n) * sum of cross-entropies over the whole batch in one process."""
    model, x, y = ddp_cases.step_case(n)
    logits = model(x)
    loss = -(logits.log_softmax(-1).gather(1, y[:, None])).sum() / n  # the global-batch mean
    expected = torch.autograd.grad(loss, list(model.parameters()))
    assert ranks[0]["world"] == 2
    for r in ranks:
        for got, want in zip(r["grads"][n], expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    for a, b in zip(ranks[0]["grads"][n], ranks[1]["grads"][n]):
        assert torch.equal(a, b)  # every rank steps with the same gradient


def test_in_turn_runs_rank0_first_and_a_failure_raises_everywhere(ranks):
    assert [r["saw_marker"] for r in ranks] == [False, True]
    assert [r["failure"] for r in ranks] == ["raised no files here",
                                             "raised rank 0 failed: FileNotFoundError: no files here"]


def test_runs_match_one_process(ranks):
    """A teacher and an augmented KD student (a third of its samples unlabelled) on 129
    samples in batches of 64 (the last batch: 1 sample, rank 1's shard empty) end with the
    weights and metrics of one process."""
    data, teacher, student = ddp_cases.run_case()
    t_hist = train.train_teacher(teacher, data, **ddp_cases.TRAIN)
    s_hist = train.distill(student, teacher, data, KD(T=4.0), augment=ddp_cases.noise,
                           labelled=ddp_cases.LABELLED, **ddp_cases.TRAIN)
    for r in ranks:
        for name, model in (("teacher", teacher), ("student", student)):
            for k, v in model.state_dict().items():
                torch.testing.assert_close(r[name][k], v, rtol=1e-4, atol=1e-5, msg=f"{name} {k}")
        for name, hist in (("teacher_rows", t_hist), ("student_rows", s_hist)):
            got, want = pd.DataFrame(r[name]), hist.df
            assert list(got.columns) == list(want.columns)
            pd.testing.assert_frame_equal(got, want, rtol=1e-4, atol=1e-6)
    for k, v in ranks[0]["student"].items():
        assert torch.equal(v, ranks[1]["student"][k])  # the ranks hold the same weights


def test_torchrun_compare_equals_one_process(launch, tmp_path, capsys):
    """``compare`` on digits under torchrun with 2 ranks: the accuracies of the same
    command in one process, one CSV (rank 0's), the table printed once, cache entries
    written once and complete, and read back by all ranks by a second command."""
    _, stdout, folder = launch
    assert cli_main([*COMPARE, "--no-cache", "--csv", str(tmp_path / "one.csv")]) == 0  # one process
    out = capsys.readouterr().out
    assert "torchrun: " not in out and out.count("test acc % (mean ± std)") == 1
    assert stdout.count("test acc % (mean ± std)") == 2  # two commands, each table printed once
    assert stdout.count("torchrun: 2 processes (gloo)") == 2
    assert stdout.count(f"wrote 2 runs to {folder / 'runs.csv'}\n") == 1
    assert stdout.count(f"wrote 2 runs to {folder / 'again.csv'}\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["again.csv", "cache", "entries.json", "marker",
                                                        "rank0.pt", "rank1.pt", "runs.csv"]
    a, b = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(folder / "runs.csv")
    assert list(b["method"]) == ["ce", "kd"] and list(a.columns) == list(b.columns)
    for column in ("test_acc", "val_acc", "teacher_test_acc"):
        assert b[column].tolist() == pytest.approx(a[column].tolist(), abs=1e-6), column
    for column in ("train_loss", "test_nll"):
        assert b[column].tolist() == pytest.approx(a[column].tolist(), rel=1e-4), column
    entries = sorted((folder / "cache").iterdir())
    assert [e.name.split("-")[0] for e in entries] == ["student", "student", "teacher"]
    for entry in entries:
        cache.read(entry)  # complete and valid
    # the second command read every entry back (none rewritten) and found the same numbers
    assert json.loads((folder / "entries.json").read_text()) == {e.name: e.stat().st_mtime_ns
                                                                for e in entries}
    pd.testing.assert_frame_equal(pd.read_csv(folder / "again.csv"), b)
