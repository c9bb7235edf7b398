"""Tests of skdtutor.claims: the claim table on synthetic rows, against verdicts computed by hand."""
import math

import numpy as np
import pandas as pd
import pytest

from skdtutor import claims

SEEDS = [0, 1, 2]


def by_hand(a, b, kind="better"):
    """The noise rule written out: diff of means against sqrt((var a + var b) / 2), ddof 1."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a.mean() - b.mean()
    noise = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return diff, noise, (diff > noise) if kind == "better" else (diff >= -noise)


def rows(dataset, method, T, values, **extra):
    return [{"dataset": dataset, "method": method, "T": T, "seed": s, "test_acc": v, **extra}
            for s, v in zip(SEEDS, values)]


# per dataset: method -> {T: per-seed accuracies}
RESULTS = {
    "alpha": {"ce": {np.nan: [0.80, 0.81, 0.79]},
              "kd": {1.0: [0.80, 0.82, 0.81], 4.0: [0.84, 0.85, 0.83], 16.0: [0.70, 0.72, 0.71]},
              "skd": {1.0: [0.86, 0.86, 0.87], 4.0: [0.87, 0.88, 0.86], 16.0: [0.85, 0.86, 0.86]},
              "dice": {1.0: [0.79, 0.80, 0.80], 4.0: [0.78, 0.79, 0.77], 16.0: [0.8, 0.8, 0.81]},
              "kd@dice": {4.0: [0.84, 0.85, 0.83]}},
    "beta": {"ce": {np.nan: [0.60, 0.64, 0.62]},
             "kd": {1.0: [0.61, 0.60, 0.62], 4.0: [0.60, 0.66, 0.61], 16.0: [0.63, 0.60, 0.61]},
             "skd": {1.0: [0.58, 0.57, 0.58], 4.0: [0.59, 0.60, 0.58], 16.0: [0.50, 0.52, 0.51]},
             "dice": {1.0: [0.55, 0.56, 0.57], 4.0: [0.55, 0.57, 0.56], 16.0: [0.5, 0.5, 0.52]},
             "kd@dice": {16.0: [0.63, 0.60, 0.61]}},
}


@pytest.fixture
def results():
    out = []
    for name, methods in RESULTS.items():
        for method, per_t in methods.items():
            for T, values in per_t.items():
                out += rows(name, method, T, values)
    return pd.DataFrame(out)


def spread(name, method):
    per_t = np.array(list(RESULTS[name][method].values()))  # (T, seed)
    return per_t.max(0) - per_t.min(0)


def expected_results_cases(name):
    r = RESULTS[name]
    best_T = max(r["kd"], key=lambda t: np.mean(r["kd"][t]))
    return {
        "kd_vs_ce": by_hand(r["kd"][4.0], r["ce"][np.nan]),
        "skd_vs_kd": by_hand(r["skd"][4.0], r["kd"][4.0]),
        "skd_robust_T": by_hand(spread(name, "kd"), spread(name, "skd")),
        "dice_loss": by_hand(r["dice"][4.0], r["kd"][4.0], "not worse"),
        "dice_search": by_hand(list(r["kd@dice"].values())[0], r["kd"][best_T], "not worse"),
    }


def test_results_cases_match_hand_computation(results):
    cases = claims.case_table(results=results)
    assert set(cases["key"]) == {"kd_vs_ce", "skd_vs_kd", "skd_robust_T", "dice_loss", "dice_search"}
    for name in RESULTS:
        for key, (diff, noise, holds) in expected_results_cases(name).items():
            row = cases[(cases["key"] == key) & (cases["case"] == name)]
            assert len(row) == 1
            assert row["diff"].iloc[0] == pytest.approx(diff, abs=1e-12)
            assert row["noise"].iloc[0] == pytest.approx(noise, abs=1e-12)
            assert bool(row["holds"].iloc[0]) == bool(holds), (name, key)


def test_claim_table_verdicts_and_words(results):
    table = claims.claim_table(results=results)
    expected = {key: [expected_results_cases(n)[key][2] for n in RESULTS]
                for key in expected_results_cases("alpha")}
    for key, holds in expected.items():
        row = table[table["key"] == key].iloc[0]
        verdict = "holds" if all(holds) else "does not hold" if not any(holds) else "mixed"
        assert row["verdict"] == verdict, key
        assert row["cases"] == 2 and row["held"] == sum(holds)
        marks = "; ".join(f"{n} {'✓' if h else '✗'}" for n, h in zip(RESULTS, holds))
        assert claims.quote(table, key) == f"**{verdict}** ({marks})"
        assert claims.quote(table, key, detail=False) == \
            f"**{verdict}** ({sum(holds)} of 2 cases hold{'s' if sum(holds) == 1 else ''})"
        assert row["measured"].count("✗") == len(holds) - sum(holds)
    # the data were built so that every verdict occurs
    assert set(table["verdict"]) == {"holds", "mixed", "does not hold"}
    for verdict in ("holds", "mixed", "does not hold"):
        names = [c.short for c in claims.CLAIMS if c.key in expected
                 and table.set_index("key").loc[c.key, "verdict"] == verdict]
        assert claims.listing(table, verdict) == ("; ".join(names) or "none")
    assert claims.listing(table, "unheard of") == "none"


def test_best_temperature_is_the_best_mean(results):
    cases = claims.case_table(results=results)
    got = cases[cases["key"] == "dice_search"].set_index("case")["T_b"]
    assert got["alpha"] == 4.0            # kd means: 0.81, 0.84, 0.71
    assert got["beta"] == 4.0             # kd means: 0.61, 0.623, 0.613
    ref = claims.case_table(results=results, T_ref=1.0)
    row = ref[(ref["key"] == "kd_vs_ce") & (ref["case"] == "alpha")].iloc[0]
    assert row["diff"] == pytest.approx(by_hand(RESULTS["alpha"]["kd"][1.0], RESULTS["alpha"]["ce"][np.nan])[0])


# few labels: (dataset, fraction) -> variant -> per-seed accuracies
SEMI = {
    ("alpha", 0.1): {("labelled part", "labels only", "ce"): [0.50, 0.52, 0.51],
                     ("labelled part", "soft", "kd"): [0.60, 0.61, 0.62],
                     ("labelled part", "soft", "skd"): [0.52, 0.50, 0.51],
                     ("labelled part", "hard", "kd"): [0.55, 0.56, 0.57],
                     ("labelled part", "hard", "skd"): [0.51, 0.53, 0.52],
                     ("all", "soft", "kd"): [0.70, 0.71, 0.72]},
    ("alpha", 0.25): {("labelled part", "labels only", "ce"): [0.70, 0.72, 0.71],
                      ("labelled part", "soft", "kd"): [0.71, 0.73, 0.72],
                      ("labelled part", "soft", "skd"): [0.76, 0.77, 0.75],
                      ("labelled part", "hard", "kd"): [0.71, 0.72, 0.73],
                      ("labelled part", "hard", "skd"): [0.70, 0.71, 0.70],
                      ("all", "soft", "kd"): [0.72, 0.71, 0.73]},
}


@pytest.fixture
def semi():
    out = []
    for (name, fraction), variants in SEMI.items():
        for (teacher, targets, method), values in variants.items():
            out += rows(name, method, np.nan if method == "ce" else 4.0, values, fraction=fraction,
                        targets=targets, teacher_labels=teacher)
    return pd.DataFrame(out)


def test_semi_cases_per_fraction_and_loss(semi):
    cases = claims.case_table(semi=semi)
    few = "labelled part"
    for (name, fraction), v in SEMI.items():
        label = f"{name} {100 * fraction:g} %"
        for loss in ("kd", "skd"):
            expect = {"unlabelled": by_hand(v[(few, "soft", loss)], v[(few, "labels only", "ce")]),
                      "soft_vs_hard": by_hand(v[(few, "soft", loss)], v[(few, "hard", loss)])}
            for key, (diff, noise, holds) in expect.items():
                row = cases[(cases["key"] == key) & (cases["case"] == f"{label} ({loss.upper()})")]
                assert len(row) == 1
                assert row["diff"].iloc[0] == pytest.approx(diff)
                assert row["noise"].iloc[0] == pytest.approx(noise)
                assert bool(row["holds"].iloc[0]) == bool(holds)
        diff, noise, holds = by_hand(v[("all", "soft", "kd")], v[(few, "soft", "kd")])
        row = cases[(cases["key"] == "better_teacher") & (cases["case"] == label)].iloc[0]
        assert (row["diff"], row["noise"], bool(row["holds"])) == (pytest.approx(diff), pytest.approx(noise), holds)
    table = claims.claim_table(semi=semi)
    assert list(table["key"]) == ["unlabelled", "soft_vs_hard", "better_teacher"]
    assert table.set_index("key")["cases"].to_dict() == {"unlabelled": 4, "soft_vs_hard": 4, "better_teacher": 2}


def test_comparison_words_follow_the_noise_rule(semi):
    cases = claims.case_table(semi=semi)
    for r in cases.itertuples():
        expected = "better" if r.diff > r.noise else "worse" if r.diff < -r.noise else "within noise"
        assert r.comparison == expected


def test_missing_rows_and_unknown_keys(results):
    with pytest.raises(ValueError, match="no rows"):
        claims.case_table(results=results[results["method"] != "skd"])
    with pytest.raises(KeyError):
        claims.claim("no such claim")
    table = claims.claim_table(results=results)
    with pytest.raises(KeyError):
        claims.quote(table, "unlabelled")  # a semi claim: not in a results-only table
    assert claims.claim_table().empty


def test_skd_study_rows_keep_the_default_teacher_and_multiplier():
    class Study:  # the two attributes skd_study_rows reads
        default_width = 32
        settings = {"multiplier": 2.0}
        runs = pd.DataFrame([
            {"method": "ce", "teacher": np.nan, "multiplier": np.nan, "ce_on_raw": np.nan},
            {"method": "kd", "teacher": 32, "multiplier": np.nan, "ce_on_raw": np.nan},
            {"method": "kd", "teacher": 8, "multiplier": np.nan, "ce_on_raw": np.nan},
            {"method": "skd", "teacher": 32, "multiplier": 2.0, "ce_on_raw": False},
            {"method": "skd", "teacher": 32, "multiplier": 4.0, "ce_on_raw": False},
            {"method": "skd", "teacher": 32, "multiplier": 2.0, "ce_on_raw": True},
            {"method": "dice", "teacher": 32, "multiplier": np.nan, "ce_on_raw": np.nan},
        ])
    kept = claims.skd_study_rows(Study())
    assert kept[["method", "teacher"]].fillna(0).values.tolist() == [["ce", 0], ["kd", 32], ["skd", 32], ["dice", 32]]


def test_case_list_names_the_cases(semi, results):
    cases = claims.case_table(semi=semi)
    ce = cases[cases["key"] == "unlabelled"]
    expected = "; ".join(f"`alpha` at {100 * f:g} % ({v})" for f, v in zip(ce["fraction"], ce["variant"]))
    assert claims.case_list(ce) == expected
    assert claims.case_list(ce.iloc[:0]) == "none"
    plain = claims.case_table(results=results)
    assert claims.case_list(plain[plain["key"] == "kd_vs_ce"], code=False) == "alpha; beta"


def test_case_grid_puts_each_case_in_its_row_and_column(semi):
    cases = claims.case_table(semi=semi)
    labels = {"soft_vs_hard": "soft vs hard", "better_teacher": "all-label"}
    grid = claims.case_grid(cases, labels)
    assert list(grid.columns) == [("soft vs hard", "KD"), ("soft vs hard", "SKD"), ("all-label", "KD")]
    assert list(grid.index) == [("alpha", "10 %"), ("alpha", "25 %")]
    few = "labelled part"
    for (name, fraction), v in SEMI.items():
        for loss in ("kd", "skd"):
            diff, noise, _ = by_hand(v[(few, "soft", loss)], v[(few, "hard", loss)])
            mark = "✓" if diff > noise else "✗" if diff < -noise else "≈"
            assert grid.loc[(name, f"{100 * fraction:g} %"), ("soft vs hard", loss.upper())] == f"{100 * diff:+.1f} {mark}".replace("+0.0 ", "0.0 ").replace("-0.0 ", "0.0 ")
