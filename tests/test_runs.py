"""Helpers added for chapters 3 and 4: students of several teachers in one sweep, and the SKD study."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from skdtutor import data as data_mod
from skdtutor import experiments
from skdtutor.losses import CE, KD, SKD, DiceKD
from skdtutor.train import TeacherLogits


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


def _teacher(n, c=10, scale=5.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * scale


@pytest.mark.parametrize("loss", [KD(T=3.0, gamma=0.7), SKD(T=2.0, gamma=0.8, multiplier=3.0),
                                  SKD(T=2.0, ce_on_raw=True), DiceKD(T=4.0, gamma=0.5)])
def test_routed_loss_equals_the_base_loss_on_its_slice(loss):
    s, t0, t1 = _teacher(6, seed=1), _teacher(6, seed=2), _teacher(6, seed=3)
    y = torch.arange(6) % 10
    concat = torch.cat([t0, t1], dim=-1)
    for index, t in ((0, t0), (1, t1)):
        routed = experiments.routed_loss(loss, index, 10)
        assert isinstance(routed, type(loss)) and routed.name == loss.name
        assert routed.teacher_index == index and "teacher_index" in type(routed).stackable
        torch.testing.assert_close(routed(s, concat, y), loss(s, t, y), rtol=1e-6, atol=1e-7)


def test_routed_loss_picks_one_teacher_per_stacked_member():
    """Inside a sweep the index is a (k, 1, 1) tensor and the logits carry a member axis."""
    loss = KD(T=2.0, gamma=0.5)
    s = torch.stack([_teacher(5, seed=i) for i in range(3)])        # (members, batch, C)
    teachers = [_teacher(5, seed=10 + i) for i in range(2)]
    concat = torch.cat(teachers, dim=-1).expand(3, -1, -1)            # same batch for every member
    y = torch.tensor([0, 1, 2, 3, 4])
    index = torch.tensor([1.0, 0.0, 1.0]).view(-1, 1, 1)
    routed_cls = type(experiments.routed_loss(loss, 0, 10))
    out = routed_cls.per_sample(s, concat, y.expand(3, -1), None, T=2.0, gamma=0.5,
                                teacher_index=index, num_classes=10)
    for member, k in enumerate([1, 0, 1]):
        expected = KD.per_sample(s[member], teachers[k], y, None, T=2.0, gamma=0.5)
        torch.testing.assert_close(out[member], expected)


def test_run_students_multi_matches_run_students_and_caches(digits, monkeypatch, tmp_path):
    t_a = TeacherLogits(*(_teacher(len(getattr(digits, f"y_{s}")), seed=i)
                                      for i, s in enumerate(("train", "val", "test"))))
    t_b = TeacherLogits(t_a.train.flip(-1), t_a.val.flip(-1), t_a.test.flip(-1))
    kw = dict(width=8, depth=1, lr=1e-3, batch_size=256)
    plan = [(None, CE()), ("a", KD(T=4.0)), ("b", KD(T=4.0)), ("b", SKD(T=2.0))]
    rows, logits = experiments.run_students_multi(digits, {"a": t_a, "b": t_b}, "mlp", plan, [0, 1], 2,
                                                  keep_logits=True, cache=tmp_path, **kw)
    assert len(rows) == len(logits) == 8
    assert rows["teacher"].isna().iloc[0] and list(rows["teacher"].iloc[2::2]) == ["a", "b", "b"]
    assert logits[0]["val"].shape == (len(digits.y_val), 10)
    assert logits[0]["test"].shape == (len(digits.y_test), 10)
    # each student is exactly the one run_students trains against its own teacher
    for key, teacher in (("a", t_a), ("b", t_b)):
        ref = experiments.run_students(digits, teacher, "mlp", [KD(T=4.0)], [0, 1], 2, **kw)
        mine = rows[(rows["teacher"] == key) & (rows["method"] == "kd")]
        assert list(mine["test_acc"]) == pytest.approx(list(ref["test_acc"]), abs=1e-6)
        assert list(mine["test_agreement"]) == pytest.approx(list(ref["test_agreement"]), abs=1e-6)
    assert "teacher_index" not in rows and "num_classes" not in rows
    # a second call with the same arguments is read from the cache, without training
    monkeypatch.setattr(experiments, "distill_sweep", lambda *a, **k: pytest.fail("retrained"))
    again = experiments.run_students_multi(digits, {"a": t_a, "b": t_b}, "mlp", plan, [0, 1], 2,
                                           cache=tmp_path, **kw)
    assert list(again["test_acc"]) == list(rows["test_acc"])


def test_run_students_multi_rejects_bad_plans(digits):
    t = TeacherLogits(_teacher(len(digits.y_train)), _teacher(len(digits.y_val)), _teacher(len(digits.y_test)))
    with pytest.raises(ValueError, match="not among the teachers"):
        experiments.run_students_multi(digits, {"a": t}, "mlp", [("b", KD())], [0], 1, use_cache=False)
    with pytest.raises(ValueError, match="needs a teacher"):
        experiments.run_students_multi(digits, {"a": t}, "mlp", [(None, KD())], [0], 1, use_cache=False)
    with pytest.raises(ValueError, match="non-empty"):
        experiments.run_students_multi(digits, {"a": t}, "mlp", [], [0], 1, use_cache=False)


def test_skd_study_trains_every_experiment_once(digits, monkeypatch, tmp_path):
    small = dataclasses.replace(experiments.SETTINGS["digits"], teacher_width=8, teacher_epochs=1,
                                student_width=8, student_epochs=1)
    monkeypatch.setitem(experiments.SETTINGS, "digits", small)
    kw = dict(temperatures=(1, 4), T=4.0, multipliers=(1, 2), teacher_widths=(4,), cache=tmp_path)
    study = experiments.skd_study(digits, (0, 1), **kw)
    # CE; KD, SKD, Dice at 2 T; SKD m=1 at T=4 (m=2 is already there); ablation at T=4;
    # KD and SKD at T=4 from the width-4 teacher (the default width 8 ones are already there)
    assert len(study.runs) == 2 * (1 + 2 * 3 + 1 + 1 + 2)
    assert study.default_width == 8 and list(study.teachers["width"]) == [4, 8]
    assert set(study.teacher_logits) == {4, 8}
    assert len(study.select(method="kd", teacher=8)) == 4
    assert len(study.select(method="skd", ce_on_raw=True)) == 2
    assert len(study.select(method=["kd", "skd"], teacher=4)) == 4
    assert len(study.select(method="ce", teacher=None)) == 2
    assert len(study.logits) == len(study.runs)
    assert study.settings["epochs"] == 1
    # chapter 4 calls it again with the same arguments: nothing is trained
    monkeypatch.setattr(experiments, "distill_sweep", lambda *a, **k: pytest.fail("retrained"))
    again = experiments.skd_study(digits, (0, 1), **kw)
    assert list(again.runs["test_acc"]) == list(study.runs["test_acc"])
