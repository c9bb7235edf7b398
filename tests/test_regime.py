"""Tests of the regime map (skdtutor.regime): T chosen on validation, the summary's gain and
noise against a hand computation, and a tiny real run on digits."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from skdtutor import data as data_mod
from skdtutor import regime
from skdtutor.config import ModelSpec, setting_for
from skdtutor.models import count_parameters
from skdtutor.steps import TeacherLogits


def _synthetic():
    """One axis point: CE, KD at T=1, 4 and SKD at T=2, three seeds; KD's best val T (4) is
    not its best test T (1)."""
    rows = []
    ce = {"val": [0.60, 0.62, 0.64], "test": [0.50, 0.52, 0.57]}
    kd = {1.0: {"val": [0.61, 0.60, 0.62], "test": [0.70, 0.71, 0.72]},
          4.0: {"val": [0.66, 0.64, 0.65], "test": [0.55, 0.53, 0.60]}}
    skd = {2.0: {"val": [0.7, 0.7, 0.7], "test": [0.60, 0.62, 0.61]},
           8.0: {"val": [0.7, 0.7, 0.7], "test": [0.90, 0.90, 0.90]}}  # a tie on val: smallest T
    for seed in range(3):
        rows.append(("ce", np.nan, seed, ce["val"][seed], ce["test"][seed]))
        for method, grid in (("kd", kd), ("skd", skd)):
            for t, v in grid.items():
                rows.append((method, t, seed, v["val"][seed], v["test"][seed]))
    df = pd.DataFrame(rows, columns=["method", "T", "seed", "val_acc", "test_acc"])
    return df.assign(dataset="toy", axis="size", params=123, width=4, depth=1, fraction=1.0)[regime.ROW_COLUMNS], \
        ce, kd, skd


def test_best_temperature_is_chosen_on_validation():
    rows, _, kd, skd = _synthetic()
    by_val = max(kd, key=lambda t: sum(kd[t]["val"]) / 3)
    by_test = max(kd, key=lambda t: sum(kd[t]["test"]) / 3)
    assert by_val != by_test  # the case the rule is for
    assert regime.best_temperature(rows, "kd") == by_val
    assert regime.best_temperature(rows, "kd", value="test_acc") == by_test
    assert regime.best_temperature(rows, "skd") == min(skd)  # tie on validation
    with pytest.raises(ValueError):
        regime.best_temperature(rows, "dice")


def _sample_std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def test_summary_gain_and_noise_by_hand():
    rows, ce, kd, skd = _synthetic()
    s = regime.summarize_regime(rows)
    assert len(s) == 1
    s = s.iloc[0]
    ce_t = ce["test"]
    for m, t, vals in (("kd", 4.0, kd[4.0]["test"]), ("skd", 2.0, skd[2.0]["test"])):
        gain = sum(vals) / 3 - sum(ce_t) / 3
        noise = math.sqrt((_sample_std(vals) ** 2 + _sample_std(ce_t) ** 2) / 2)
        verdict = "better" if gain > noise else "worse" if gain < -noise else "within noise"
        assert s[f"{m}_T"] == t
        assert s[f"{m}_mean"] == pytest.approx(sum(vals) / 3)
        assert s[f"{m}_std"] == pytest.approx(_sample_std(vals))
        assert s[f"{m}_gain"] == pytest.approx(gain)
        assert s[f"{m}_noise"] == pytest.approx(noise)
        assert s[f"{m}_verdict"] == verdict
    assert s["ce_mean"] == pytest.approx(sum(ce_t) / 3)
    assert s["ce_std"] == pytest.approx(_sample_std(ce_t))
    assert s["kd_verdict"] == "within noise" and s["skd_verdict"] == "better"  # the toy's two cases


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


def test_fraction_subset_is_stratified(digits):
    g = torch.Generator().manual_seed(0)
    teacher = TeacherLogits(*(torch.randn(len(getattr(digits, f"y_{s}")), 10, generator=g)
                              for s in ("train", "val", "test")))
    sub, sub_t, idx = regime.fraction_subset(digits, teacher, 0.25, seed=3)
    y = digits.y_train.numpy()
    for c in range(10):
        assert int((sub.y_train == c).sum()) == round(0.25 * int((y == c).sum()))
    assert torch.equal(sub.y_train, digits.y_train[torch.as_tensor(idx)])
    assert torch.equal(sub_t.train, teacher.train[torch.as_tensor(idx)])
    assert torch.equal(sub_t.test, teacher.test) and torch.equal(sub.x_val, digits.x_val)
    same = regime.fraction_subset(digits, teacher, 1.0)
    assert same[0] is digits and same[1] is teacher
    with pytest.raises(ValueError):
        regime.fraction_subset(digits, teacher, 0.0)


def test_tiny_real_map_on_digits(digits, tmp_path):
    sizes, temps, seeds, fracs = [(8, 1), (4, 0)], (1.0, 4.0), [0, 1], (0.5,)
    rmap = regime.regime_map(digits, sizes, temps, seeds, fractions=fracs, epochs=1, device="cpu",
                             cache=tmp_path, use_cache=False)
    rows = rmap.rows
    per_point = (1 + 2 * len(temps)) * len(seeds)
    assert list(rows.columns) == regime.ROW_COLUMNS
    assert (rows["axis"] == "size").sum() == len(sizes) * per_point
    assert (rows["axis"] == "fraction").sum() == (len(fracs) + 1) * per_point  # + the full split
    for (w, d), part in rows[rows["axis"] == "size"].groupby(["width", "depth"]):
        expected = count_parameters(ModelSpec("mlp", int(w), int(d)).build(digits))
        assert (part["params"] == expected).all()
    default = setting_for("digits").student
    frac_rows = rows[rows["axis"] == "fraction"]
    assert (frac_rows["width"] == default.width).all() and (frac_rows["depth"] == default.depth).all()
    assert sorted(frac_rows["fraction"].unique()) == [0.5, 1.0]
    assert rows.loc[rows["method"] == "ce", "T"].isna().all()
    assert set(rows.loc[rows["method"] != "ce", "T"]) == set(temps)
    assert len(rmap.summary) == len(sizes) + len(fracs) + 1
    assert rmap.summary["kd_verdict"].isin(["better", "worse", "within noise"]).all()
    assert 0.0 < rmap.teacher_acc <= 1.0
    with pytest.raises(ValueError):
        regime.regime_map(digits, sizes, temps, [0], epochs=1, device="cpu", use_cache=False)


def test_regime_table_text():
    rows, ce, kd, skd = _synthetic()
    s = regime.summarize_regime(rows)
    t = regime.regime_table(s)
    assert list(t.columns) == ["data", "student", "CE (%)", "KD − CE", "SKD − CE"]
    row = t.iloc[0]
    assert row["student"] == "4×1 (123)"
    ce_m, ce_s = sum(ce["test"]) / 3 * 100, _sample_std(ce["test"]) * 100
    assert row["CE (%)"] == f"{ce_m:.1f} ± {ce_s:.1f}"
    kd_gain = (sum(kd[4.0]["test"]) - sum(ce["test"])) / 3 * 100
    assert row["KD − CE"] == f"{kd_gain:+.1f} (T 4) ".replace("+0.0 ", "0.0 ").replace("-0.0 ", "0.0 ") + regime.VERDICT_MARKS[s.iloc[0]["kd_verdict"]]
    assert row["SKD − CE"].endswith(regime.VERDICT_MARKS["better"])
    assert regime.regime_table(s, axis="fraction").empty


def test_given_teacher_is_used(digits):
    g = torch.Generator().manual_seed(1)
    teacher = TeacherLogits(*(torch.randn(len(getattr(digits, f"y_{s}")), 10, generator=g)
                              for s in ("train", "val", "test")))
    rmap = regime.regime_map(digits, [(4, 1)], (2.0,), [0, 1], epochs=1, teacher=teacher,
                             device="cpu", use_cache=False)
    expected = (teacher.test.argmax(-1) == digits.y_test).double().mean().item()
    assert rmap.teacher_acc == pytest.approx(expected)
    assert len(rmap.rows) == 3 * 2 and set(rmap.rows["axis"]) == {"size"}


def test_gain_phrase_and_points_where():
    rows, *_ = _synthetic()
    two = pd.concat([rows, rows.assign(width=8, params=456)], ignore_index=True)
    s = regime.summarize_regime(two)
    row = s.iloc[0]
    from skdtutor.stats import compare_to_noise, noise_phrase, seed_values
    part = rows
    expected = noise_phrase(compare_to_noise(seed_values(part, method="skd", T=2.0),
                                             seed_values(part, method="ce")))
    assert regime.gain_phrase(row, "skd") == expected
    assert regime.points_where(s, "skd") == ["4×1", "8×1"]
    assert regime.points_where(s, "kd") == []
    assert regime.points_where(s, "kd", "within noise") == ["4×1", "8×1"]


def test_summary_row_and_where_text():
    rows, *_ = _synthetic()
    two = pd.concat([rows, rows.assign(width=8, params=456),
                     rows.assign(axis="fraction", fraction=0.5)], ignore_index=True)
    s = regime.summarize_regime(two)
    assert regime.summary_row(s, "toy", size=(8, 1))["params"] == 456
    assert regime.summary_row(s, "toy", fraction=0.5)["axis"] == "fraction"
    with pytest.raises(ValueError):
        regime.summary_row(s, "toy", size=(99, 1))
    with pytest.raises(ValueError):
        regime.summary_row(s, "toy")
    assert regime.where_text(s, "toy", "skd") == "at 4×1, 8×1"
    assert regime.where_text(s, "toy", "kd") == "at none of them"
    assert regime.where_text(s, "toy", "skd", axis="fraction") == "at 50%"
