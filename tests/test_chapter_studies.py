"""Tests of the SKD study of chapters 3 and 4 (skdtutor.chapter_studies.skd_study)."""
from __future__ import annotations

import dataclasses

import pytest

from skdtutor import chapter_studies, config, runs
from skdtutor import data as data_mod


@pytest.fixture(scope="module")
def digits():
    return data_mod.load("digits")


def test_skd_study_trains_every_experiment_once(digits, monkeypatch, tmp_path):
    s = config.SETTINGS["digits"]
    small = dataclasses.replace(s, teacher=s.teacher.replace(width=8),
                                teacher_train=s.teacher_train.replace(epochs=1),
                                student=s.student.replace(width=8),
                                student_train=s.student_train.replace(epochs=1))
    monkeypatch.setitem(config.SETTINGS, "digits", small)
    kw = dict(temperatures=(1, 4), T=4.0, multipliers=(1, 2), teacher_widths=(4,), cache=tmp_path)
    study = chapter_studies.skd_study(digits, (0, 1), **kw)
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
    monkeypatch.setattr(runs, "distill_sweep", lambda *a, **k: pytest.fail("retrained"))
    again = chapter_studies.skd_study(digits, (0, 1), **kw)
    assert list(again.runs["test_acc"]) == list(study.runs["test_acc"])


def test_shared_settings_run_is_skd_study_with_those_settings(digits, monkeypatch, tmp_path):
    s = config.SETTINGS["digits"]
    small = dataclasses.replace(s, teacher=s.teacher.replace(width=8),
                                teacher_train=s.teacher_train.replace(epochs=1),
                                student=s.student.replace(width=8),
                                student_train=s.student_train.replace(epochs=1))
    monkeypatch.setitem(config.SETTINGS, "digits", small)
    settings = chapter_studies.SKD_STUDY.replace(seeds=[0, 1], temperatures=[1, 4],
                                                 multipliers=(2,), teacher_widths=(4,))
    assert settings.seeds == (0, 1) and settings.temperatures == (1, 4)   # lists become tuples
    assert settings.datasets == chapter_studies.SKD_STUDY.datasets
    study = settings.run(digits, cache=tmp_path)
    direct = chapter_studies.skd_study(digits, (0, 1), temperatures=(1, 4), T=settings.T,
                                       gamma=settings.gamma, multiplier=settings.multiplier,
                                       multipliers=(2,), teacher_widths=(4,),
                                       ablation_temperatures=settings.ablation_temperatures,
                                       cache=tmp_path)
    assert list(study.runs["test_acc"]) == list(direct.runs["test_acc"])
    assert study.settings == direct.settings
    # the ablation and multiplier runs sit at the settings' T, the capacity runs at both widths
    assert set(study.select(method="skd", ce_on_raw=True)["T"]) == set(settings.ablation_temperatures)
    assert set(study.select(method="kd")["teacher"]) == {4, 8}



def test_semi_supervised_settings_run_is_semi_supervised_with_those_settings(tmp_path):
    settings = chapter_studies.SEMI_SUPERVISED.replace(
        fractions=(0.1,), seeds=(0, 1), teacher_steps=4, student_epochs=2,
        per_dataset={"mnist1d": {"fractions": (0.2, 0.3)}})
    assert settings.study_kwargs("mnist1d")["fractions"] == (0.2, 0.3)
    assert settings.study_kwargs("mnist1d")["student_epochs"] == 2 == settings.study_kwargs("digits")["student_epochs"]
    runs = settings.run("digits", cache=tmp_path)
    direct = chapter_studies.semi_supervised("digits", (0.1,), [0, 1], T=settings.T, gamma=settings.gamma,
                                             multiplier=settings.multiplier, teacher_steps=4,
                                             student_epochs=2, cache=tmp_path)
    assert list(runs["test_acc"]) == list(direct["test_acc"])
    named = {(r.teacher_labels, r.targets, r.method): r.variant for r in runs.itertuples()}
    assert named == chapter_studies.SEMI_VARIANTS
    # the book's settings: both chapters' datasets, at least 3 seeds, each dataset's own fractions
    book = chapter_studies.SEMI_SUPERVISED
    assert len(book.seeds) >= 3 and set(book.per_dataset) <= set(book.datasets)


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
    settings = chapter_studies.RESULTS_TABLE
    assert args.dataset == list(settings["datasets"]) and args.seeds == list(settings["seeds"])
    assert [float(t) for t in args.temperatures] == list(settings["temperatures"])
    assert args.methods == list(RESULT_METHODS) and args.dice_temperatures is None
    assert args.teacher_epochs is None and args.student_epochs is None  # the SETTINGS defaults
    assert (args.gamma, args.multiplier) == (0.9, 2.0)


def test_rows_and_values_default_to_the_main_comparison(digits, monkeypatch, tmp_path):
    s = config.SETTINGS["digits"]
    small = dataclasses.replace(s, teacher=s.teacher.replace(width=8),
                                teacher_train=s.teacher_train.replace(epochs=1),
                                student=s.student.replace(width=8),
                                student_train=s.student_train.replace(epochs=1))
    monkeypatch.setitem(config.SETTINGS, "digits", small)
    study = chapter_studies.SKD_STUDY.replace(seeds=(0, 1), temperatures=(1, 4), multipliers=(1, 2),
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
