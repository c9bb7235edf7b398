"""Tests of skdtutor.stats: seed summaries, tables and the one noise rule (hand computations)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from skdtutor import stats


def test_summarize_matches_numpy():
    rng = np.random.default_rng(3)
    rows = [{"method": m, "T": t, "seed": s, "test_acc": rng.uniform()}
            for m, ts in (("ce", [np.nan]), ("kd", [1.0, 4.0]), ("skd", [4.0])) for t in ts
            for s in range(4)]
    runs = pd.DataFrame(rows)
    summary = stats.seed_summary(runs)
    assert len(summary) == 4
    for _, row in summary.iterrows():
        same_t = runs["T"].isna() if pd.isna(row["T"]) else runs["T"] == row["T"]
        values = runs.loc[(runs["method"] == row["method"]) & same_t, "test_acc"].to_numpy()
        assert row["n"] == len(values) == 4
        assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert row["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)



# ----------------------------------------------------------------------- claim verdicts
def test_claim_verdict_rule():
    a, b = [0.90, 0.92, 0.91], [0.85, 0.86, 0.84]
    v = stats.claim_verdict(a, b)
    noise = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    assert v["diff"] == pytest.approx(np.mean(a) - np.mean(b)) and v["noise"] == pytest.approx(noise)
    assert v["holds"]
    assert not stats.claim_verdict(b, a)["holds"]
    close = [0.851, 0.861, 0.841]
    assert not stats.claim_verdict(close, b)["holds"]  # within noise: not "better"...
    assert stats.claim_verdict(close, b, kind="not worse")["holds"]  # ...but not worse either
    assert not stats.claim_verdict(b, a, kind="not worse")["holds"]
    with pytest.raises(ValueError):
        stats.claim_verdict([1.0], b)
    assert stats.overall_verdict([True, True]) == "holds"
    assert stats.overall_verdict([False, False]) == "does not hold"
    assert stats.overall_verdict([True, False]) == "mixed"


# -------------------------------------------------------------------------- noise rule
def test_compare_to_noise_against_a_hand_computation():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.74, 0.72]
    # by hand: means 0.82 and 0.72; sample variances 0.0004 and 0.0004; pooled std 0.02
    result = stats.compare_to_noise(a, b)
    assert result["diff"] == pytest.approx(0.10)
    assert result["noise"] == pytest.approx(0.02)
    assert result["verdict"] == "better"
    assert stats.compare_to_noise(b, a)["verdict"] == "worse"
    # 0.82 vs 0.81 (same spread): diff 0.01 < noise 0.02
    assert stats.compare_to_noise(a, [0.79, 0.81, 0.83])["verdict"] == "within noise"
    with pytest.raises(ValueError, match="two seeds"):
        stats.compare_to_noise([0.5], b)


def test_noise_rule_is_the_rule_of_claim_verdict():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.normal(0.8, 0.02, 3), rng.normal(0.8, 0.02, 4)
        verdict = stats.compare_to_noise(a, b)["verdict"]
        assert stats.claim_verdict(a, b)["holds"] == (verdict == "better")
        assert stats.claim_verdict(a, b, "not worse")["holds"] == (verdict != "worse")


def test_noise_phrase_wording():
    assert stats.noise_phrase({"diff": 0.012, "noise": 0.004, "verdict": "better"}) == \
        "better by 1.2 points (noise 0.4)"
    assert stats.noise_phrase({"diff": -0.003, "noise": 0.004, "verdict": "within noise"}) == \
        "within noise (-0.3 points, noise 0.4)"


def test_noise_phrase_shows_the_digit_that_separates_difference_and_noise():
    # 0.48 and 0.52 points both print as 0.5: one more digit shows why the verdict is "within"
    assert stats.noise_phrase({"diff": 0.0048, "noise": 0.0052, "verdict": "within noise"}) == \
        "within noise (+0.48 points, noise 0.52)"
    assert stats.noise_phrase({"diff": -0.00531, "noise": 0.00528, "verdict": "worse"}) == \
        "worse by 0.531 points (noise 0.528)"
    # a difference that rounds to zero has no sign
    assert stats.noise_phrase({"diff": -0.00004, "noise": 0.006, "verdict": "within noise"}) == \
        "within noise (0.0 points, noise 0.6)"
    # equal values stay at the asked precision
    assert stats.noise_phrase({"diff": 0.005, "noise": 0.005, "verdict": "within noise"}) == \
        "within noise (+0.5 points, noise 0.5)"


def test_signed_has_a_sign_except_where_the_value_rounds_to_zero():
    assert [stats.signed(v) for v in (0.26, -1.26, 0.04, -0.04, 0.0)] == ["+0.3", "-1.3", "0.0", "0.0", "0.0"]
    assert stats.signed(-0.004, 2) == "0.00" and stats.signed(0.006, 2) == "+0.01"
    assert [stats.signed(v) for v in (math.nan, math.inf, -math.inf)] == ["nan", "inf", "-inf"]


def test_points_relation_names_the_direction_and_a_tie():
    assert stats.points_relation(0.44) == "0.4 points above" and stats.points_relation(-1.26) == "1.3 points below"
    assert stats.points_relation(0.04) == stats.points_relation(-0.04) == "level with"
    assert stats.points_relation(-0.2, "ahead of", "behind") == "0.2 points behind"


def test_tally_phrase_counts_each_verdict():
    assert stats.tally_phrase(["better"] * 3) == "better at all 3 temperatures"
    assert stats.tally_phrase(["worse"]) == "worse at the one temperature"
    assert stats.tally_phrase(["worse", "within noise", "worse"]) == \
        "worse at 2 and within noise at 1 of the 3 temperatures"
    assert stats.tally_phrase(["within noise", "better", "worse"], "seed") == \
        "better at 1, worse at 1 and within noise at 1 of the 3 seeds"
    with pytest.raises(ValueError):
        stats.tally_phrase([])


# ------------------------------------------------------------------ tables and selectors
def test_format_table_names_the_column_after_the_value():
    summary = pd.DataFrame({"method": ["ce", "kd"], "T": [math.nan, 4.0], "mean": [0.9, 0.912],
                            "std": [0.01, math.nan], "n": [3, 1]})
    table = stats.format_table(summary, value="test_nll")
    assert list(table["test_nll"]) == ["90.00 ± 1.00", "91.20"]
    assert list(table["T"]) == ["—", "4"] and "accuracy" not in table
    assert stats.mean_pm_std(0.5, 0.125, scale=1, digits=3) == "0.500 ± 0.125"


def test_select_and_seed_values():
    runs = pd.DataFrame({"method": ["kd", "kd", "kd", "ce"], "teacher": [8, 8, 4, None],
                         "seed": [1, 0, 0, 0], "test_acc": [0.2, 0.1, 0.3, 0.4]})
    assert list(stats.select(runs, method="kd", teacher=8).index) == [0, 1]
    assert list(stats.select(runs, teacher=None)["method"]) == ["ce"]
    assert list(stats.select(runs, teacher=[4, 8]).index) == [0, 1, 2]
    np.testing.assert_array_equal(stats.seed_values(runs, method="kd", teacher=8), [0.1, 0.2])
    with pytest.raises(ValueError, match="several rows per seed"):
        stats.seed_values(runs, method="kd")


# ------------------------------------------------------------ runs, per-seed choices, words
def _runs(values, **columns):
    return pd.DataFrame({"seed": range(len(values)), "test_acc": values, **columns})


def test_beats_and_compare_runs_follow_the_noise_rule():
    a, b = [0.90, 0.92, 0.91], [0.85, 0.86, 0.84]
    noise = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    result = stats.compare_runs(_runs(a), _runs(b))
    assert result["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert result["noise"] == pytest.approx(noise) and result["verdict"] == "better"
    assert stats.beats(_runs(a), _runs(b)) and not stats.beats(_runs(b), _runs(a))
    assert stats.beats(a, b)  # per-seed values work too
    close = [0.851, 0.861, 0.841]  # 0.1 point ahead, noise about 1 point
    assert not stats.beats(close, b) and not stats.beats(b, close)
    assert stats.compare_runs(_runs(a, val_acc=b), _runs(b, val_acc=a), "val_acc")["verdict"] == "worse"


def test_select_per_seed_and_best_setting():
    runs = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "T": [1.0, 4.0] * 3,
                         "val_acc": [0.5, 0.6, 0.7, 0.6, 0.5, 0.55], "test_acc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    picked = stats.select_per_seed(runs, "T", {0: 4.0, 1: 1.0, 2: 4.0})
    assert list(picked.index) == [1, 2, 5]
    with pytest.raises(ValueError, match="seed 1"):
        stats.select_per_seed(runs, "T", {1: 8.0})
    # means by hand: T=1 val (0.5+0.7+0.5)/3 = 0.567, T=4 val 0.583; test 0.3 vs 0.4
    assert stats.best_setting(runs, "T") == 4.0
    assert stats.best_setting(runs.assign(val_acc=0.5), "T") == 1.0  # a tie goes to the smallest
    assert stats.best_setting(runs, "T", "test_acc") == 4.0


def test_on_cases_and_verdicts_phrase():
    assert stats.on_cases({"digits": True, "mnist1d": True}) == "both datasets"
    assert stats.on_cases({"digits": False, "mnist1d": False}) == "neither dataset"
    assert stats.on_cases({"digits": False, "mnist1d": True}) == "`mnist1d` only"
    assert stats.on_cases({"a": True, "b": True, "c": True}) == "all 3 datasets"
    assert stats.on_cases({"a": False, "b": True, "c": True}) == "`b` and `c` only"
    assert stats.verdicts_phrase({"digits": "within noise", "mnist1d": "within noise"}) == \
        "within noise on both datasets"
    assert stats.verdicts_phrase({"digits": "worse", "mnist1d": "better"}) == \
        "worse on `digits`, better on `mnist1d`"
    with pytest.raises(ValueError):
        stats.verdicts_phrase({})


def test_overall_effect_covers_every_mix_of_verdicts():
    cases = {("better", "better"): "helps", ("worse", "worse"): "hurts",
             ("within noise", "within noise"): "neither helps nor hurts",
             ("better", "within noise"): "helps in part", ("within noise", "worse"): "does not help",
             ("better", "worse"): "gives mixed results", ("worse", "within noise", "better"): "gives mixed results"}
    for verdicts, word in cases.items():
        assert stats.overall_effect(list(verdicts)) == word
        assert stats.overall_effect({f"case {k}": v for k, v in enumerate(verdicts)}) == word
    with pytest.raises(ValueError):
        stats.overall_effect({})


def test_temperature_table_pivots_mean_pm_std_and_repeats_ce():
    rows = [dict(dataset="d", method="ce", T=np.nan, seed=k, test_acc=a) for k, a in enumerate((0.5, 0.6))]
    rows += [dict(dataset="d", method="kd", T=t, seed=k, test_acc=a)
             for t, accs in ((4.0, (0.7, 0.9)), (1.0, (0.2, 0.4))) for k, a in enumerate(accs)]
    rows += [dict(dataset="e", method="kd", T=1.0, seed=0, test_acc=0.3)]
    table = stats.temperature_table(pd.DataFrame(rows))
    assert list(table.columns) == ["T = 1", "T = 4"]
    assert table.index.names == ["dataset", "method"]
    # by hand: CE mean 55, std sqrt(0.005) = 7.07; KD T=4 mean 80, std 14.14; T=1 mean 30
    assert table.loc[("d", "ce")].tolist() == ["55.00 ± 7.07", "55.00 ± 7.07"]
    assert table.loc[("d", "kd")].tolist() == ["30.00 ± 14.14", "80.00 ± 14.14"]
    assert table.loc[("e", "kd")].tolist() == ["30.00", "—"]          # one seed: no std; T=4 missing
    one = stats.temperature_table(pd.DataFrame(rows), index=("method",), digits=1)
    assert one.loc["ce", "T = 4"] == "55.0 ± 7.1"

