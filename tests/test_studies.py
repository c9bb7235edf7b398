"""Tests of the studies behind the CLI and chapters 5-6 (compare, results, few labels) and of
the teachers for few labels.

Tiny settings throughout (a few epochs): these check bookkeeping and equivalences,
not accuracy.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from skdtutor import data as data_mod
from skdtutor import semi_study, studies, teachers
from skdtutor.config import setting_for
from skdtutor.losses import CE, KD, SKD
from skdtutor.runs import plan, run_students
from skdtutor.temperature import dice_temperature_search
from skdtutor.train import distill, predict

REPO = Path(__file__).resolve().parents[1]
CHAPTER6 = REPO / "book" / "06_results_at_a_glance.ipynb"
TINY = dict(teacher_epochs=2, student_epochs=2)


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


@pytest.fixture(scope="module")
def teacher(digits, tmp_path_factory):
    _, logits, _ = teachers.get_teacher(digits, epochs=2, cache=tmp_path_factory.mktemp("teacher"))
    return logits


def students(data, teacher, losses, seeds, epochs, **kw):
    """The runner with the digits setting's student, every member learning from ``teacher``."""
    s = setting_for("digits")
    return run_students(data, {"t": teacher}, s.student, plan(losses, seeds, "t"), s.student_train,
                        epochs=epochs, **kw)


# ------------------------------------------------------------------------------ compare
def test_compare_one_row_per_method_temperature_seed_and_ce_once_per_seed(tmp_path):
    runs = studies.compare("digits", methods=("ce", "kd", "skd"), temperatures=(1, 4), seeds=[0, 1],
                     cache=tmp_path, **TINY)
    assert len(runs) == 2 + 2 * 2 * 2
    ce = runs[runs["method"] == "ce"]
    assert sorted(ce["seed"]) == [0, 1] and ce["T"].isna().all()
    keys = runs[runs["method"] != "ce"][["method", "T", "seed"]].apply(tuple, axis=1)
    assert sorted(keys) == sorted((m, float(t), s) for m in ("kd", "skd") for t in (1, 4) for s in (0, 1))
    assert (runs["dataset"] == "digits").all()
    assert {"teacher", "teacher_params", "teacher_test_acc", "student", "student_params"} <= set(runs)


def test_compare_rejects_unknown_method(tmp_path):
    with pytest.raises(ValueError, match="bogus"):
        studies.compare("digits", methods=("kd", "bogus"), seeds=1, cache=tmp_path, **TINY)


def test_kd_at_dice_uses_the_temperature_of_the_dice_search(digits, tmp_path):
    temps = (1.0, 2.0, 4.0, 8.0)
    runs = studies.compare("digits", methods=("kd@dice",), seeds=[0, 1], dice_temperatures=temps,
                     cache=tmp_path, **TINY)
    assert list(runs["method"]) == ["kd@dice", "kd@dice"]  # the CE students are not reported
    assert set(runs.attrs["dice_search"]) == {0, 1}
    s = setting_for("digits")
    _, t_logits, _ = teachers.get_teacher(digits, epochs=TINY["teacher_epochs"], cache=tmp_path)
    for _, row in runs.iterrows():
        seed = int(row["seed"])
        # an independent CE student of that seed (sequential trainer) and the search on validation
        torch.manual_seed(seed)
        ce = s.student.build(digits)
        distill(ce, None, digits, CE(), TINY["student_epochs"], lr=s.student_train.lr,
                batch_size=s.student_train.batch_size, seed=seed, progress=False)
        best, table = dice_temperature_search(t_logits.val, predict(ce, digits.x_val), digits.y_val,
                                              temperatures=temps)
        assert row["T"] == best
        pd.testing.assert_frame_equal(table, pd.DataFrame(runs.attrs["dice_search"][seed]), atol=1e-6, rtol=0)
        # and the student is a KD student at that temperature
        kd = students(digits, t_logits, [KD(T=best, gamma=0.9)], [seed], TINY["student_epochs"]).rows
        assert row["test_acc"] == kd["test_acc"].iloc[0]


# ----------------------------------------------------------------------- results / CLI
def chapter_command() -> str:
    nb = json.loads(CHAPTER6.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    found = re.findall(r'^COMMAND = "(python -m skdtutor results[^"]*)"', code, flags=re.M)
    assert len(found) == 1, "chapter 6 must define COMMAND = \"python -m skdtutor results ...\" once"
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    markdown = re.sub(r"[ ]*\\\n[ ]*", " ", markdown)  # a shell line continued with "\" is one line
    assert found[0] in markdown, "chapter 6 must print its COMMAND in the text too"
    return found[0]


def test_chapter_command_reproduces_results_table(tmp_path):
    argv = shlex.split(chapter_command())
    assert argv[:4] == ["python", "-m", "skdtutor", "results"]
    csv = tmp_path / "runs.csv"
    tiny = ["--dataset", "digits", "--seeds", "0,1", "--teacher-epochs", "2", "--student-epochs", "2",
            "--temperatures", "1,4", "--dice-temperatures", "1,2,4", "--csv", str(csv),
            "--cache-dir", str(tmp_path / "cli-cache")]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, *argv[1:], *tiny], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    cli = pd.read_csv(csv)
    # the library call of chapter 6, same settings, its own cache (the teacher is retrained)
    table, runs = studies.results_table("digits", seeds=[0, 1], temperatures=[1, 4], dice_temperatures=[1, 2, 4],
                                  return_runs=True, cache=tmp_path / "lib-cache", **TINY)
    key = ["dataset", "method", "T", "seed"]
    merged = cli.merge(runs, on=key, how="outer", suffixes=("_cli", "_lib"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[key + ["_merge"]]
    assert len(merged) == len(runs) == 2 * (1 + 3 * 2 + 1)
    np.testing.assert_array_equal(merged["test_acc_cli"], merged["test_acc_lib"])
    for acc in table["test_acc"]:
        assert acc in proc.stdout


def test_results_table_rows_and_columns(tmp_path):
    table, runs = studies.results_table("digits,mnist1d", seeds=2, temperatures=[4], dice_temperatures=[1, 4],
                                  return_runs=True, cache=tmp_path, **TINY)
    assert list(table["dataset"]) == ["digits"] * 5 + ["mnist1d"] * 5 and len(runs) == 20
    assert set(runs.attrs["dice_search"]) == {"digits", "mnist1d"}
    assert set(runs.attrs["dice_search"]["mnist1d"]) == {0, 1}
    table, runs = table.iloc[:5], runs[runs["dataset"] == "digits"]
    assert list(table["method"]) == ["ce", "kd", "skd", "dice", "kd@dice"]
    assert list(table["T"][:4]) == ["—", "4", "4", "4"]
    assert set(table["T"].iloc[-1].split("/")) <= {"1", "4"}
    assert (table["n"] == 2).all() and (table["seeds"] == "0,1").all()
    for column in ("mean", "std", "test_acc", "teacher", "teacher_params", "teacher_test_acc",
                   "student", "student_params"):
        assert column in table
    kd = runs[runs["method"] == "kd"]["test_acc"]
    row = table[table["method"] == "kd"].iloc[0]
    assert row["mean"] == pytest.approx(kd.mean()) and row["std"] == pytest.approx(kd.std(ddof=1))


def test_cli_accepts_kd_at_dice_and_threads():
    from skdtutor.__main__ import build_parser

    args = build_parser().parse_args(["compare", "--methods", "ce,kd@dice", "--threads", "1",
                                      "--dice-temperatures", "1,2"])
    assert args.methods == ["ce", "kd@dice"] and args.threads == 1 and args.dice_temperatures == [1, 2]
    args = build_parser().parse_args(["results"])
    assert args.dataset == ["digits", "mnist1d"]
    assert args.methods == list(studies.RESULT_METHODS) and args.temperatures == [1, 4, 16]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["results", "--dataset", "digits,imagenet"])


# -------------------------------------------------------------------- few labels (ch. 5)
def test_labelled_mask_keeps_a_fraction_of_every_class(digits):
    mask = teachers.labelled_mask(digits, 0.1, seed=0)
    assert mask.dtype == torch.bool and mask.shape == digits.y_train.shape
    for c in range(10):
        in_class = digits.y_train == c
        assert int(mask[in_class].sum()) == round(0.1 * int(in_class.sum()))
    assert torch.equal(mask, teachers.labelled_mask(digits, 0.1, seed=0))
    assert not torch.equal(mask, teachers.labelled_mask(digits, 0.1, seed=1))
    assert teachers.labelled_mask(digits, 1.0).all()
    with pytest.raises(ValueError, match="fraction"):
        teachers.labelled_mask(digits, 0.0)


def test_hard_targets_are_one_hot_at_the_teachers_argmax(teacher):
    hard = teachers.hard_targets(teacher)
    for split in ("train", "val", "test"):
        soft, h = getattr(teacher, split), getattr(hard, split)
        assert torch.equal(h.argmax(-1), soft.argmax(-1))
        p = torch.softmax(h / 16.0, dim=-1)
        assert torch.allclose(p, torch.nn.functional.one_hot(soft.argmax(-1), 10).float(), atol=1e-12)


def test_all_true_mask_equals_fully_labelled_run(digits, teacher):
    losses = [CE(), KD(T=4.0, gamma=0.9), SKD(T=4.0, gamma=0.9)]
    full = students(digits, teacher, losses, [0, 1], 2)
    masked = students(digits, teacher, losses, [0, 1], 2,
                      labelled=torch.ones(len(digits.y_train), dtype=torch.bool))
    np.testing.assert_array_equal(full.rows["test_acc"], masked.rows["test_acc"])
    for a, b in zip(full.models, masked.models):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name


@pytest.mark.parametrize("batched", [True, False])
def test_labels_of_unlabelled_samples_do_not_influence_training(digits, teacher, batched):
    mask = teachers.labelled_mask(digits, 0.2, seed=0)
    scrambled = replace(digits, y_train=torch.where(mask, digits.y_train, (digits.y_train + 3) % 10))
    assert not torch.equal(scrambled.y_train, digits.y_train)
    losses = [CE(), KD(T=4.0, gamma=0.9), SKD(T=4.0, gamma=0.9)]
    kw = dict(labelled=mask, batched=batched)
    h_a = students(digits, teacher, losses, [0], 2, **kw).models
    h_b = students(scrambled, teacher, losses, [0], 2, **kw).models
    for a, b in zip(h_a, h_b):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    # ...while without the mask the labels do matter
    kw["labelled"] = None
    h_c = students(digits, teacher, losses[:1], [0], 2, **kw).models
    h_d = students(scrambled, teacher, losses[:1], [0], 2, **kw).models
    assert not torch.equal(h_c[0].net[-1].weight, h_d[0].net[-1].weight)


def test_subset_teacher_sees_only_the_labelled_part(digits, tmp_path):
    mask, model, logits, epochs = teachers.subset_teacher(digits, 0.1, teacher_steps=4, cache=tmp_path)
    assert epochs == -(-4 // -(-int(mask.sum()) // 64))  # ceil(4 steps / batches of 64 per epoch)
    assert logits.train.shape == (len(digits.y_train), 10)
    # other inputs on the unlabelled part: the very same teacher (the labels choose the
    # class-balanced subset, so they stay)
    other = replace(digits, x_train=torch.where(mask.view(-1, 1, 1, 1), digits.x_train, -digits.x_train))
    _, model2, _, _ = teachers.subset_teacher(other, 0.1, teacher_steps=4, cache=tmp_path / "other")
    for p, q in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(p, q)
    # another labelled subset of the same size is another teacher (not a cache hit)
    mask3, model3, _, _ = teachers.subset_teacher(digits, 0.1, subset_seed=1, teacher_steps=4, cache=tmp_path)
    assert int(mask3.sum()) == int(mask.sum()) and not torch.equal(mask3, mask)
    assert not torch.equal(model3.classifier.weight, model.classifier.weight)


def test_semi_supervised_rows_and_cache(tmp_path):
    kw = dict(fractions=(0.1, 0.5), seeds=[0, 1], teacher_steps=4, student_epochs=2, cache=tmp_path)
    runs = semi_study.semi_supervised("digits", **kw)
    variants = runs[["fraction", "teacher_labels", "targets", "method"]].drop_duplicates()
    assert len(variants) == 2 * 6 and len(runs) == 2 * 6 * 2
    got = set(variants[["teacher_labels", "targets", "method"]].itertuples(index=False, name=None))
    assert got == {("labelled part", "labels only", "ce"), ("labelled part", "soft", "kd"),
                   ("labelled part", "soft", "skd"), ("labelled part", "hard", "kd"),
                   ("labelled part", "hard", "skd"), ("all", "soft", "kd")}
    assert runs.loc[runs["method"] == "ce", "T"].isna().all()
    assert (runs.loc[runs["method"] != "ce", "T"] == 4.0).all()
    few = runs[runs["teacher_labels"] == "labelled part"].groupby("fraction")["n_labelled"].first()
    assert few.loc[0.1] < few.loc[0.5]
    again = semi_study.semi_supervised("digits", **kw)  # from the on-disk cache
    pd.testing.assert_frame_equal(runs, again)
    # the soft rows equal a plain run_students call with the same teacher and mask
    mask, _, t_logits, _ = teachers.subset_teacher(data_mod.load("digits"), 0.1, teacher_steps=4, cache=tmp_path)
    plain = students(data_mod.load("digits"), t_logits, [KD(T=4.0, gamma=0.9)], [0, 1], 2,
                     labelled=mask).rows
    soft_kd = runs[(runs["fraction"] == 0.1) & (runs["targets"] == "soft") & (runs["method"] == "kd")
                   & (runs["teacher_labels"] == "labelled part")]
    np.testing.assert_allclose(soft_kd["test_acc"].to_numpy(), plain["test_acc"].to_numpy(), atol=1e-9)


@pytest.mark.parametrize("seeds,needle", [([0, 0, 1], "more than once"), ([-1, 2], ">= 0"), ([], "non-empty"),
                                          (0, "positive count"), ([1.5], "integers"), (True, "integers")])
def test_seed_list_refuses_repeated_negative_and_empty_seeds(seeds, needle):
    from skdtutor.studies import seed_list

    with pytest.raises(ValueError, match=needle):
        seed_list(seeds)
    assert seed_list(3) == [0, 1, 2] and seed_list([4, 2]) == [4, 2]


@pytest.mark.parametrize("kwargs,needle", [
    (dict(methods=("kd@dice",), gamma=2.0), "gamma"),
    (dict(methods=("kd@dice",), dice_temperatures=(0.001,)), "temperature"),
    (dict(methods=("ce",), multiplier=1e300), "multiplier"),
    (dict(methods=("kd",), temperatures=(1e-40,)), "temperature"),
    (dict(student_width=0), "width"), (dict(student_epochs=20_000), "MAX_EPOCHS"),
    (dict(device="foo"), "unknown device"), (dict(seeds=[1, 1]), "more than once"),
])
def test_compare_validates_everything_before_training(monkeypatch, kwargs, needle):
    from skdtutor import studies

    def refuse(*a, **k):
        raise AssertionError("trained before validating")

    monkeypatch.setattr(studies, "get_teacher", refuse)
    monkeypatch.setattr(studies.data_mod, "load", refuse)
    with pytest.raises(ValueError, match=needle):
        studies.compare("digits", **kwargs)
    with pytest.raises(ValueError, match=needle):
        studies.results_table(["digits", "mnist1d"], **kwargs)


def test_results_command_of_chapter_6_and_readme_runs_the_results_table_settings():
    import json
    import re
    import shlex
    from pathlib import Path

    from skdtutor.__main__ import build_parser
    from skdtutor.studies import RESULT_METHODS

    repo = Path(__file__).resolve().parents[1]
    nb = json.loads((repo / "book" / "06_results_at_a_glance.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    (command,) = re.findall(r'^COMMAND = "(python -m skdtutor results[^"]*)"', code, flags=re.M)
    assert command in (repo / "README.md").read_text()
    args = build_parser().parse_args(shlex.split(command)[3:])
    settings = studies.RESULTS_TABLE
    assert args.dataset == list(settings["datasets"]) and args.seeds == list(settings["seeds"])
    assert [float(t) for t in args.temperatures] == list(settings["temperatures"])
    assert args.methods == list(RESULT_METHODS) and args.dice_temperatures is None
    assert args.teacher_epochs is None and args.student_epochs is None  # the SETTINGS defaults
    assert (args.gamma, args.multiplier) == (0.9, 2.0)
