"""Tests of the SKD study of chapters 3 and 4 (skdtutor.skd_study)."""
from __future__ import annotations

import dataclasses

import pytest

from skdtutor import config, runs, skd_study
from skdtutor import data as data_mod


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


@pytest.fixture
def tiny_digits_setting(monkeypatch):
    """The digits defaults shrunk to width-8 models and one epoch, for the length of a test."""
    s = config.SETTINGS["digits"]
    small = dataclasses.replace(s, teacher=s.teacher.replace(width=8),
                                teacher_train=s.teacher_train.replace(epochs=1),
                                student=s.student.replace(width=8),
                                student_train=s.student_train.replace(epochs=1))
    monkeypatch.setitem(config.SETTINGS, "digits", small)
    return small


def test_skd_study_trains_every_experiment_once(digits, tiny_digits_setting, monkeypatch, tmp_path):
    kw = dict(temperatures=(1, 4), T=4.0, multipliers=(1, 2), teacher_widths=(4,), cache=tmp_path)
    study = skd_study.skd_study(digits, (0, 1), **kw)
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
    monkeypatch.setattr(runs, "stacked_sweep", lambda *a, **k: pytest.fail("retrained"))
    again = skd_study.skd_study(digits, (0, 1), **kw)
    assert list(again.runs["test_acc"]) == list(study.runs["test_acc"])


def test_shared_settings_run_is_skd_study_with_those_settings(digits, tiny_digits_setting, tmp_path):
    settings = skd_study.SKD_STUDY.replace(seeds=[0, 1], temperatures=[1, 4],
                                                 multipliers=(2,), teacher_widths=(4,))
    assert settings.seeds == (0, 1) and settings.temperatures == (1, 4)   # lists become tuples
    assert settings.datasets == skd_study.SKD_STUDY.datasets
    study = settings.run(digits, cache=tmp_path)
    direct = skd_study.skd_study(digits, (0, 1), temperatures=(1, 4), T=settings.T,
                                       gamma=settings.gamma, multiplier=settings.multiplier,
                                       multipliers=(2,), teacher_widths=(4,),
                                       ablation_temperatures=settings.ablation_temperatures,
                                       cache=tmp_path)
    assert list(study.runs["test_acc"]) == list(direct.runs["test_acc"])
    assert study.settings == direct.settings
    # the ablation and multiplier runs sit at the settings' T, the capacity runs at both widths
    assert set(study.select(method="skd", ce_on_raw=True)["T"]) == set(settings.ablation_temperatures)
    assert set(study.select(method="kd")["teacher"]) == {4, 8}


def test_rows_and_values_default_to_the_main_comparison(digits, tiny_digits_setting, tmp_path):
    study = skd_study.SKD_STUDY.replace(seeds=(0, 1), temperatures=(1, 4), multipliers=(1, 2),
                                              teacher_widths=(4,)).run(digits, cache=tmp_path)
    runs = study.runs
    # the same rows picked by hand from the full table
    skd = runs[(runs["method"] == "skd") & (runs["teacher"] == 8) & (runs["multiplier"] == 2.0)
               & (runs["ce_on_raw"] == False) & (runs["T"] == 4.0)].sort_values("seed")  # noqa: E712
    assert list(study.values("skd", T=4.0)) == list(skd["test_acc"])
    assert len(study.rows("skd")) == 2 * 2                      # 2 temperatures x 2 seeds
    assert set(study.rows("skd", multiplier=1.0)["T"]) == {4.0}  # the multiplier sweep sits at T
    assert set(study.rows("kd", teacher=4)["teacher"]) == {4}
    assert len(study.rows("ce")) == 2 and study.rows("ce")["teacher"].isna().all()
    raw = runs[(runs["method"] == "skd") & (runs["ce_on_raw"] == True)].sort_values("seed")  # noqa: E712
    assert list(study.values("skd", ce_on_raw=True)) == list(raw["test_acc"])
    with pytest.raises(ValueError):
        study.values("kd")                                      # several temperatures per seed


def test_chapter_3_runs_the_shared_settings():
    import json
    from pathlib import Path
    nb = json.loads((Path(__file__).parents[1] / "book" / "03_spherical_kd.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "SKD_STUDY" in code and "skd_study(" not in code
