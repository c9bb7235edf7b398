"""Tests of the student runner (skdtutor.runs): plan routing, the sequential path, the cache."""
from __future__ import annotations


import pytest
import torch

from skdtutor import data as data_mod
from skdtutor import runs
from skdtutor.config import ModelSpec, TrainConfig
from skdtutor.losses import CE, KD, SKD
from skdtutor.metrics import agreement
from skdtutor.runs import Member, plan, run_students
from skdtutor.train import TeacherLogits, distill, predict
from scaled_loss import registered  # (tests/scaled_loss.py)

SPEC = ModelSpec("mlp", width=8, depth=1)
CFG = TrainConfig(epochs=2, lr=1e-3, batch_size=256)


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


def _random_teacher(data, seed):
    g = torch.Generator().manual_seed(seed)
    return TeacherLogits(*(torch.randn(len(getattr(data, f"y_{s}")), 10, generator=g) * 5.0
                           for s in ("train", "val", "test")))


@pytest.fixture(scope="module")
def two_teachers(digits):
    t_a = _random_teacher(digits, 0)
    t_b = TeacherLogits(t_a.train.flip(-1), t_a.val.flip(-1), t_a.test.flip(-1))
    return {"a": t_a, "b": t_b}


PLAN = [Member(CE(), 0), Member(CE(), 1), Member(KD(T=4.0), 0, "a"), Member(KD(T=4.0), 1, "a"),
        Member(KD(T=4.0), 0, "b"), Member(KD(T=4.0), 1, "b"), Member(SKD(T=2.0), 1, "b")]


def test_plan_builds_one_member_per_loss_and_seed():
    members = plan([CE(), KD(T=2.0)], [3, 5], teacher="t")
    assert [(m.loss.name, m.seed, m.teacher) for m in members] == \
        [("ce", 3, "t"), ("ce", 5, "t"), ("kd", 3, "t"), ("kd", 5, "t")]


@pytest.mark.parametrize("batched", [True, False], ids=["stacked", "sequential"])
def test_each_member_learns_from_its_own_teacher(digits, two_teachers, batched):
    """The routed plan equals one plain distill() run per member against its own teacher."""
    result = run_students(digits, two_teachers, SPEC, PLAN, CFG, batched=batched, keep_logits=True)
    rows = result.rows
    assert len(rows) == len(result.logits) == len(result.models) == len(PLAN)
    assert rows["teacher"].isna().sum() == 2 and list(rows["teacher"][2:]) == ["a", "a", "b", "b", "b"]
    assert rows.loc[rows["teacher"].isna(), "test_agreement"].isna().all()
    for i, m in enumerate(PLAN):
        # the reference: a fresh student, the member's own teacher alone, the sequential trainer
        model = SPEC.build(digits, seed=m.seed)
        teacher = None if m.teacher is None else two_teachers[m.teacher]
        h = distill(model, teacher, digits, m.loss, 2, lr=1e-3, batch_size=256, seed=m.seed,
                    progress=False)
        gap = max((p - q).abs().max().item() for p, q in
                  zip(model.state_dict().values(), result.models[i].state_dict().values()))
        assert gap < 1e-5, m
        assert rows["test_acc"][i] == pytest.approx(h.final["test_acc"], abs=1e-6)
        test = predict(model, digits.x_test)
        torch.testing.assert_close(result.logits[i]["test"], test, rtol=1e-4, atol=1e-4)
        if teacher is not None:
            assert rows["test_agreement"][i] == pytest.approx(agreement(test, teacher.test), abs=1e-6)


def test_a_label_mask_reaches_every_member_of_every_teacher(digits, two_teachers):
    """Chapter 5's set-up: students of two teachers stacked with one label mask equal
    sequential distill() runs with that mask; another mask changes every distilled student."""
    n = len(digits.y_train)
    members = PLAN[2:]
    masks = [torch.arange(n) % 10 == 0, torch.arange(n) % 2 == 0]
    results = [run_students(digits, two_teachers, SPEC, members, CFG, labelled=m) for m in masks]
    for i, m in enumerate(members):
        for mask, result in zip(masks, results):
            model = SPEC.build(digits, seed=m.seed)
            h = distill(model, two_teachers[m.teacher], digits, m.loss, 2, lr=1e-3, batch_size=256,
                        seed=m.seed, labelled=mask, progress=False)
            assert result.rows["train_loss"][i] == pytest.approx(h.final["train_loss"], rel=1e-5), m
        assert results[0].rows["train_loss"][i] != pytest.approx(results[1].rows["train_loss"][i], rel=1e-3)


def test_second_call_is_read_from_the_cache(digits, two_teachers, monkeypatch, tmp_path):
    first = run_students(digits, two_teachers, SPEC, PLAN[:4], CFG, cache=tmp_path, use_cache=True)
    monkeypatch.setattr(runs, "stacked_sweep", lambda *a, **k: pytest.fail("retrained"))
    again = run_students(digits, two_teachers, SPEC, PLAN[:4], CFG, cache=tmp_path, use_cache=True,
                         keep_logits=True)
    assert list(again.rows["test_acc"]) == list(first.rows["test_acc"])
    assert again.models is None and again.logits[0]["val"].shape == (len(digits.y_val), 10)
    # another learning rate is another entry
    monkeypatch.undo()
    other = run_students(digits, two_teachers, SPEC, PLAN[:4], CFG.replace(lr=2e-3), cache=tmp_path,
                         use_cache=True)
    assert len(list(tmp_path.glob("student-*.pt"))) == 2 * 4 and len(other.rows) == 4


def test_an_overlapping_plan_trains_only_the_members_the_cache_lacks(digits, two_teachers,
                                                                     monkeypatch, tmp_path):
    """Members are cached one by one: a second plan that shares members with a first one (the
    same loss, seed and teacher logits, under another teacher key and in another order)
    reads those back and trains only the new ones, with the numbers of a plan run alone."""
    first = run_students(digits, two_teachers, SPEC, PLAN[:4], CFG, cache=tmp_path, use_cache=True)
    trained = []
    real_sweep = runs.stacked_sweep

    def recording_sweep(spec, teachers, data, members, cfg, **kw):
        trained.extend((m.loss.name, m.seed) for m in members)
        return real_sweep(spec, teachers, data, members, cfg, **kw)

    monkeypatch.setattr(runs, "stacked_sweep", recording_sweep)
    renamed = {"b": two_teachers["b"], "same as a": two_teachers["a"]}
    second_plan = [Member(KD(T=4.0), 1, "same as a"), Member(SKD(T=2.0), 1, "b"), Member(CE(), 0)]
    second = run_students(digits, renamed, SPEC, second_plan, CFG, cache=tmp_path, use_cache=True,
                          keep_logits=True)
    assert trained == [("skd", 1)]
    assert second.rows["test_acc"][0] == first.rows["test_acc"][3]
    assert second.rows["test_acc"][2] == first.rows["test_acc"][0]
    assert list(second.rows["teacher"][:2]) == ["same as a", "b"] and second.rows["teacher"].isna()[2]
    alone = run_students(digits, two_teachers, SPEC, [PLAN[6]], CFG)
    assert second.rows["test_acc"][1] == pytest.approx(alone.rows["test_acc"][0], abs=1e-12)
    assert second.models is None and all(item["test"].shape == (len(digits.y_test), 10)
                                         for item in second.logits)


def test_bad_plans_are_refused(digits, two_teachers):
    with pytest.raises(ValueError, match="not among the teachers"):
        run_students(digits, two_teachers, SPEC, [Member(KD(), 0, "c")], CFG)
    with pytest.raises(ValueError, match="needs a teacher"):
        run_students(digits, two_teachers, SPEC, [Member(KD(), 0)], CFG)
    with pytest.raises(ValueError, match="empty"):
        run_students(digits, two_teachers, SPEC, [], CFG)
    with pytest.raises(ValueError, match="Member"):
        run_students(digits, two_teachers, SPEC, [KD()], CFG)


def test_plan_refuses_repeated_seeds():
    with pytest.raises(ValueError, match=r"seeds \[0\] appear more than once"):
        plan([CE()], [0, 0, 1])


def test_a_diverged_member_is_a_flagged_row_never_an_accuracy(digits):
    """Stacked or sequential: the diverged member's row says so and has NaN metrics; the
    others are the numbers of a plan without it; summaries leave it out and say so."""
    import math

    from skdtutor.stats import seed_summary
    from skdtutor.studies import diverged_note

    with registered() as Boom:
        members = [Member(Boom(1.0), 0), Member(Boom(float("inf")), 1), Member(Boom(1.0), 1)]
        with pytest.warns(RuntimeWarning, match="diverged"):
            stacked = run_students(digits, None, SPEC, members, CFG).rows
        with pytest.warns(RuntimeWarning, match="diverged"):
            sequential = run_students(digits, None, SPEC, members, CFG, batched=False).rows
        healthy = run_students(digits, None, SPEC, [members[0], members[2]], CFG).rows
    for rows in (stacked, sequential):
        assert rows["diverged"].tolist() == [False, True, False]
        assert rows.loc[1, "diverged_epoch"] == 1
        assert math.isnan(rows.loc[1, "test_acc"]) and math.isnan(rows.loc[1, "val_acc"])
        assert rows.loc[[0, 2], "test_acc"].tolist() == pytest.approx(healthy["test_acc"].tolist(), abs=1e-9)
        summary = seed_summary(rows.assign(dataset="digits"), by=["method"])
        assert summary["n"].tolist() == [2]  # the diverged seed is not counted
        assert summary["mean"].iloc[0] == pytest.approx(healthy["test_acc"].mean())
        note = diverged_note(rows.assign(dataset="digits"))
        assert note.startswith("1 of 3 runs diverged") and "scaled-ce-test seed 1" in note
    assert diverged_note(healthy) == ""
