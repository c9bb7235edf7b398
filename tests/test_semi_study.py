"""Tests of the few-label study of chapters 5 and 6 (skdtutor.semi_study)."""
from __future__ import annotations

from skdtutor import semi_study


def test_semi_supervised_settings_run_is_semi_supervised_with_those_settings(tmp_path):
    settings = semi_study.SEMI_SUPERVISED.replace(
        fractions=(0.1,), seeds=(0, 1), teacher_steps=4, student_epochs=2,
        per_dataset={"mnist1d": {"fractions": (0.2, 0.3)}})
    assert settings.study_kwargs("mnist1d")["fractions"] == (0.2, 0.3)
    assert settings.study_kwargs("mnist1d")["student_epochs"] == 2 == settings.study_kwargs("digits")["student_epochs"]
    runs = settings.run("digits", cache=tmp_path)
    direct = semi_study.semi_supervised("digits", (0.1,), [0, 1], T=settings.T, gamma=settings.gamma,
                                             multiplier=settings.multiplier, teacher_steps=4,
                                             student_epochs=2, cache=tmp_path)
    assert list(runs["test_acc"]) == list(direct["test_acc"])
    named = {(r.teacher_labels, r.targets, r.method): r.variant for r in runs.itertuples()}
    assert named == semi_study.SEMI_VARIANTS
    # the book's settings: both chapters' datasets, at least 3 seeds, each dataset's own fractions
    book = semi_study.SEMI_SUPERVISED
    assert len(book.seeds) >= 3 and set(book.per_dataset) <= set(book.datasets)
