"""Fault tests of the cache and the checkpoints: killed saves, damaged and planted entries,
concurrent runs. After each fault the rerun must give the numbers of a clean cache, and no
code from a cache file may run."""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from skdtutor import cache, teachers, train
from skdtutor import data as data_mod
from skdtutor.config import ModelSpec, TrainConfig
from skdtutor.losses import CE, KD
from skdtutor.runs import plan, run_students

REPO = Path(__file__).resolve().parents[1]
SPEC = ModelSpec("mlp", width=8, depth=1)
CFG = TrainConfig(epochs=2, batch_size=64, device="cpu")
STUDENT = ModelSpec("mlp", width=6, depth=1)


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


@pytest.fixture(scope="module")
def clean(digits):
    """The clean-cache numbers: the teacher's logits and the students' rows, without any cache."""
    _, logits, _ = teachers.get_teacher(digits, SPEC, CFG, use_cache=False)
    rows = run_students(digits, {"t": logits}, STUDENT, plan([CE(), KD(T=4.0)], [0, 1], "t"),
                        CFG).rows
    return logits, rows


def teacher_path(digits, folder):
    return cache.entry_path("teacher", teachers._key(digits, SPEC, CFG), folder, device="cpu")


def assert_clean_teacher(digits, folder, clean):
    _, logits, _ = teachers.get_teacher(digits, SPEC, CFG, cache=folder)
    assert torch.equal(logits.test, clean[0].test) and torch.equal(logits.train, clean[0].train)


@contextlib.contextmanager
def no_warnings():
    """A context in which any warning (a damaged entry) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


# ------------------------------------------------------------------ killed mid-save
SAVE_LOOP = """
import sys, torch
from skdtutor import cache
path = sys.argv[1]
entry = cache.read(path)
entry["pad"] = torch.randn(3_000_000)   # 12 MB: a save takes long enough to be cut
print("ready", flush=True)
while True:
    cache.save(path, entry)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_save_killed_at_random_points_never_leaves_a_half_written_entry(digits, clean, tmp_path, sig):
    folder = tmp_path / "cache"
    teachers.get_teacher(digits, SPEC, CFG, cache=folder)  # a complete entry to rewrite in a loop
    path = teacher_path(digits, folder)
    script = tmp_path / "save_loop.py"
    script.write_text(SAVE_LOOP)
    rng = random.Random(sig)
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env())
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.02, 0.6))
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert proc.returncode != 0  # it was killed mid-loop, not finished
        cache.read(path)  # the entry at the final path is always complete (no DamagedEntry)
        with no_warnings():
            assert_clean_teacher(digits, folder, clean)
    if sig == signal.SIGINT:  # KeyboardInterrupt: the writer removes its temporary file
        assert not list(folder.glob("*.tmp"))


# ------------------------------------------------------------------- damaged entries
def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path):
    blob = bytearray(path.read_bytes())
    for i in range(4):
        blob[len(blob) // 2 + 97 * i] ^= 0xFF
    path.write_bytes(bytes(blob))


def wrong_shape(path):  # a valid, checksummed entry whose weights do not fit the model
    other = ModelSpec("mlp", width=5, depth=1).build(data_mod.load("digits"), seed=0)
    cache.save(path, {"model": other.state_dict(), "history": []})


def headerless(path):  # what older versions wrote: a bare torch.save file
    torch.save({"model": {}, "history": []}, path)


DAMAGE = {"truncated": truncate, "empty": lambda p: p.write_bytes(b""), "flipped": flip,
          "garbage": lambda p: p.write_bytes(os.urandom(4096)), "wrong shape": wrong_shape,
          "headerless": headerless, "{}": lambda p: cache.save(p, {})}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_teacher_entry_warns_once_and_is_recomputed(digits, clean, tmp_path, damage):
    folder = tmp_path / "cache"
    teachers.get_teacher(digits, SPEC, CFG, cache=folder)
    path = teacher_path(digits, folder)
    DAMAGE[damage](path)
    teachers._LOGITS.clear()  # a new process: nothing in memory
    with pytest.warns(RuntimeWarning, match=path.name):
        assert_clean_teacher(digits, folder, clean)
    cache.read(path)  # replaced by a valid entry
    teachers._LOGITS.clear()
    with no_warnings():
        assert_clean_teacher(digits, folder, clean)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "wrong shape"])
def test_a_damaged_students_entry_is_recomputed(digits, clean, tmp_path, damage):
    folder = tmp_path / "cache"

    def run():
        return run_students(digits, {"t": clean[0]}, STUDENT, plan([CE(), KD(T=4.0)], [0, 1], "t"),
                            CFG, cache=folder, use_cache=True).rows

    run()
    entries = sorted(folder.glob("student-*.pt"))
    assert len(entries) == 4  # one per member
    path = entries[0]
    if damage == "wrong shape":  # logits of another number of classes, valid checksum
        stored = cache.read(path)
        stored["logits"] = {k: v[:, :3] for k, v in stored["logits"].items()}
        cache.save(path, stored)
    else:
        (flip if damage == "flipped" else truncate)(path)
    with pytest.warns(RuntimeWarning, match=path.name):
        rows = run()
    assert rows["test_acc"].tolist() == clean[1]["test_acc"].tolist()
    with no_warnings():
        assert run()["test_acc"].tolist() == clean[1]["test_acc"].tolist()


def test_a_snapshots_entry_of_the_wrong_length_is_recomputed(digits, tmp_path):
    folder = tmp_path / "cache"
    snaps, _ = teachers.teacher_snapshots(digits, SPEC, CFG, cache=folder)
    (path,) = folder.glob("snapshots-*.pt")
    stored = cache.read(path)
    stored["snapshots"] = stored["snapshots"][:-1]
    cache.save(path, stored)
    with pytest.warns(RuntimeWarning, match=path.name):
        again, _ = teachers.teacher_snapshots(digits, SPEC, CFG, cache=folder)
    assert len(again) == CFG.epochs + 1 and torch.equal(again[-1].test, snaps[-1].test)


# --------------------------------------------------------------- a pickle that runs code
class Payload:
    """Unpickling it (without weights_only) writes a marker file: code from the cache ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code from a cache file ran"))


def planted(marker) -> dict:
    """The same payload as a raw pickle, a torch file, and a torch file inside a valid header."""
    evil = {"model": Payload(marker), "history": []}
    buffer = io.BytesIO()
    torch.save(evil, buffer)
    return {"pickle": pickle.dumps(evil), "torch": buffer.getvalue(), "checksummed": cache._encode(evil)}


def test_the_planted_payload_is_live(tmp_path):
    """Control: the planted bytes do run code when unpickled the unsafe way."""
    marker = tmp_path / "ran"
    pickle.loads(planted(marker)["pickle"])
    assert marker.exists()


@pytest.mark.parametrize("form", ["pickle", "torch", "checksummed"])
def test_a_planted_pickle_never_runs_from_a_cache_entry_or_a_checkpoint(digits, clean, tmp_path, form):
    marker = tmp_path / "ran"
    folder = tmp_path / "cache"
    path = teacher_path(digits, folder)
    folder.mkdir()
    path.write_bytes(planted(marker)[form])
    teachers._LOGITS.clear()
    with pytest.warns(RuntimeWarning, match=path.name):
        assert_clean_teacher(digits, folder, clean)
    assert not marker.exists()
    cache.read(path)  # recomputed and replaced

    checkpoint = tmp_path / "run.pt"
    checkpoint.write_bytes(planted(marker)[form])
    with pytest.raises(ValueError, match=r"run\.pt.*resume=False"):
        train.train_teacher(SPEC.build(digits, seed=0), digits, config=CFG, progress=False,
                            checkpoint=checkpoint, resume=True)
    assert not marker.exists()


# ------------------------------------------------------------------ damaged checkpoints
@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped", "garbage", "{}", "headerless"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(digits, tmp_path, damage):
    path = tmp_path / "run.pt"

    def run(**kw):
        return train.train_teacher(SPEC.build(digits, seed=0), digits, config=CFG.replace(epochs=3),
                                   progress=False, checkpoint=path, **kw)

    run(stop_after=1)
    DAMAGE[damage](path)
    with pytest.raises(ValueError, match=r"run\.pt.*(delete it or pass resume=False)"):
        run(resume=True)
    full = run(resume=False)  # the fix the message names works
    assert len(full.rows) == 3


# --------------------------------------------------------------- two runs, one cache
CONCURRENT = """
import json, sys, torch
torch.set_num_threads(1)
from skdtutor import data, teachers
from skdtutor.config import ModelSpec, TrainConfig
from skdtutor.losses import CE, KD
from skdtutor.runs import plan, run_students
d = data.load("digits")
cfg = TrainConfig(epochs=2, batch_size=64, device="cpu")
_, logits, _ = teachers.get_teacher(d, ModelSpec("mlp", 8, 1), cfg, cache=sys.argv[1])
rows = run_students(d, {"t": logits}, ModelSpec("mlp", 6, 1), plan([CE(), KD(T=4.0)], [0, 1], "t"),
                    cfg, cache=sys.argv[1], use_cache=True).rows
print(json.dumps({"teacher": logits.test.sum().item(), "students": rows["test_acc"].tolist()}))
"""


def test_two_runs_on_one_empty_cache_finish_with_identical_numbers(digits, clean, tmp_path):
    folder = tmp_path / "cache"
    script = tmp_path / "run.py"
    script.write_text(CONCURRENT)
    procs = [subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env()) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    a, b = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert a == b
    assert a["students"] == clean[1]["test_acc"].tolist()
    entries = sorted(folder.glob("*.pt"))
    assert [e.name.split("-")[0] for e in entries] == ["student"] * 4 + ["teacher"]
    for entry in entries:
        cache.read(entry)  # both valid
    assert not list(folder.glob("*.tmp"))
