"""Tests of skdtutor.temperature.dice_temperature_search against a brute-force NumPy version."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reference import softmax as np_softmax  # independent NumPy reference
from skdtutor.temperature import (DEFAULT_TEMPERATURES, best_temperature, dice_choice_per_seed,
                                  dice_temperature_search)


def brute_force(teacher, student, labels, temperatures, soften_student=False, eps=1e-7):
    """Loop over temperatures and samples one at a time."""
    n, C = teacher.shape
    rows = []
    for T in temperatures:
        st_terms, lab_terms = [], []
        for i in range(n):
            p = np_softmax(teacher[i] / T)
            q = np_softmax(student[i] / (T if soften_student else 1.0))
            onehot = np.zeros(C)
            onehot[labels[i]] = 1.0
            d_s = (2 * np.dot(p, q) + eps) / (np.dot(p, p) + np.dot(q, q) + eps)
            d_l = (2 * np.dot(p, onehot) + eps) / (np.dot(p, p) + 1.0 + eps)
            st_terms.append(1 - d_s)
            lab_terms.append(1 - d_l)
        rows.append((T, np.mean(st_terms), np.mean(lab_terms)))
    return rows


@pytest.fixture
def logits(rng):
    n, C = 40, 10
    labels = rng.integers(0, C, size=n)
    # a confident teacher, mostly right; a less confident student
    teacher = rng.normal(size=(n, C)) * 2.0
    teacher[np.arange(n), labels] += 8.0
    student = rng.normal(size=(n, C)) * 1.0
    student[np.arange(n), labels] += 2.5
    return teacher, student, labels


def _call(teacher, student, labels, **kw):
    return dice_temperature_search(torch.tensor(teacher, dtype=torch.float32),
                                   torch.tensor(student, dtype=torch.float32),
                                   torch.tensor(labels), **kw)


@pytest.mark.parametrize("soften_student", [False, True])
def test_matches_brute_force(logits, soften_student):
    teacher, student, labels = logits
    temps = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 16.0]
    best, table = _call(teacher, student, labels, temperatures=temps, soften_student=soften_student)
    # the function works in float64 on the float32 inputs: feed the reference the same values
    t32 = np.asarray(torch.tensor(teacher, dtype=torch.float32).double())
    s32 = np.asarray(torch.tensor(student, dtype=torch.float32).double())
    ref = brute_force(t32, s32, labels, temps, soften_student)
    assert list(table.columns) == ["T", "student_term", "label_term", "total"]
    assert len(table) == len(temps)
    np.testing.assert_allclose(table["T"].to_numpy(), temps)
    np.testing.assert_allclose(table["student_term"].to_numpy(), [r[1] for r in ref], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table["label_term"].to_numpy(), [r[2] for r in ref], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table["total"].to_numpy(), [r[1] + r[2] for r in ref], rtol=1e-9,
                               atol=1e-12)
    totals = [r[1] + r[2] for r in ref]
    assert best == temps[int(np.argmin(totals))]
    assert isinstance(best, float)


def test_best_is_argmin_of_total_and_rows_keep_given_order(logits):
    teacher, student, labels = logits
    temps = [16.0, 1.0, 4.0, 0.5, 2.0, 8.0]  # deliberately unsorted
    best, table = _call(teacher, student, labels, temperatures=temps)
    assert isinstance(table, pd.DataFrame)
    assert table["T"].tolist() == temps
    assert best == table["T"].iloc[int(np.argmin(table["total"].to_numpy()))]
    assert table["total"].min() == pytest.approx(
        table.loc[table["T"] == best, "total"].item(), rel=0, abs=0)


def test_interior_optimum_for_overconfident_teacher(logits):
    """A sharp teacher and a soft student: neither the smallest nor the largest T wins.

    Raising T first brings the teacher towards the student, then past it towards
    the uniform distribution, so the student term has an interior minimum, while
    the label term only grows."""
    teacher, student, labels = logits
    temps = [0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0]
    best, table = _call(teacher, student, labels, temperatures=temps)
    assert temps[0] < best < temps[-1]
    # label term grows monotonically with T (teacher moves away from one-hot)
    assert np.all(np.diff(table["label_term"].to_numpy()) > 0)
    # the student term falls, then rises again: its minimum is interior
    k = int(np.argmin(table["student_term"].to_numpy()))
    assert 0 < k < len(temps) - 1
    assert table["student_term"].iloc[k] < table["student_term"].iloc[0] - 0.01
    assert table["student_term"].iloc[k] < table["student_term"].iloc[-1] - 0.01


def test_default_temperatures(logits):
    teacher, student, labels = logits
    best, table = _call(teacher, student, labels)
    assert table["T"].tolist() == list(DEFAULT_TEMPERATURES)
    assert best in DEFAULT_TEMPERATURES


def test_student_equal_teacher_with_soften_student_has_zero_student_term(logits):
    teacher, _, labels = logits
    _, table = _call(teacher, teacher, labels, temperatures=[1.0, 4.0], soften_student=True)
    np.testing.assert_allclose(table["student_term"].to_numpy(), 0.0, atol=1e-12)


def test_inputs_are_not_modified_and_grad_is_not_needed(logits):
    teacher, student, labels = logits
    t = torch.tensor(teacher, dtype=torch.float32, requires_grad=True)
    s = torch.tensor(student, dtype=torch.float32)
    t_before = t.detach().clone()
    dice_temperature_search(t, s, torch.tensor(labels), temperatures=[1.0, 2.0])
    assert torch.equal(t.detach(), t_before)


# --------------------------------------------------------------------- bad inputs

def _ok(rng):
    return torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])


def test_empty_temperatures_raise(rng):
    t, s, y = _ok(rng)
    with pytest.raises(ValueError, match="empty"):
        dice_temperature_search(t, s, y, temperatures=[])


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_nonpositive_temperature_raises(rng, bad):
    t, s, y = _ok(rng)
    with pytest.raises(ValueError, match="temperature"):
        dice_temperature_search(t, s, y, temperatures=[1.0, bad, 2.0])


def test_mismatched_shapes_raise(rng):
    t, s, y = _ok(rng)
    with pytest.raises(ValueError, match="same shape"):
        dice_temperature_search(t, torch.randn(5, 4), y)
    with pytest.raises(ValueError, match="same shape"):
        dice_temperature_search(t, torch.randn(4, 3), y)
    with pytest.raises(ValueError, match="labels"):
        dice_temperature_search(t, s, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="labels"):
        dice_temperature_search(t, s, torch.tensor([0, 1, 2, 3, 0]))  # 3 is out of range
    with pytest.raises(ValueError, match="2-D"):
        dice_temperature_search(t[0], s[0], y[:1])


def test_missing_labels_raise_value_error(rng):
    t, s, _ = _ok(rng)
    with pytest.raises(ValueError, match="labels"):
        dice_temperature_search(t, s, None)


# --------------------------------------------------------------------- choosing from a table

def test_best_temperature_among_candidates_equals_a_search_over_them(logits):
    teacher, student, labels = logits
    full = [0.5, 1.0, 2.0, 3.0, 4.0, 8.0, 16.0, 32.0]
    _, table = _call(teacher, student, labels, temperatures=full)
    assert best_temperature(table) == _call(teacher, student, labels, temperatures=full)[0]
    for subset in ([1.0, 4.0, 16.0], [32.0, 0.5], [8.0]):
        expected, _ = _call(teacher, student, labels, temperatures=subset)
        assert best_temperature(table, among=subset) == expected
        # and by hand: the smallest total among the subset's rows
        totals = {T: table.loc[table["T"] == T, "total"].item() for T in subset}
        assert expected == min(subset, key=lambda T: (totals[T], full.index(T)))


def test_best_temperature_refuses_candidates_outside_the_table(logits):
    teacher, student, labels = logits
    _, table = _call(teacher, student, labels, temperatures=[1.0, 2.0])
    with pytest.raises(ValueError, match="among"):
        best_temperature(table, among=[1.0, 5.0])
    with pytest.raises(ValueError, match="among"):
        best_temperature(table, among=[])


def test_dice_choice_per_seed_is_one_search_per_student(logits, rng):
    teacher, student, labels = logits
    other = student + rng.normal(size=student.shape) * 3.0  # a second, different student
    t, y = torch.tensor(teacher, dtype=torch.float32), torch.tensor(labels)
    students = {2: torch.tensor(student, dtype=torch.float32),
                0: torch.tensor(other, dtype=torch.float32)}
    temps = [0.5, 1.0, 4.0, 16.0]
    chosen, tables = dice_choice_per_seed(t, students, y, temps, soften_student=True)
    assert list(chosen) == list(tables) == [2, 0]  # the order of the mapping
    for seed, s in students.items():
        best, table = dice_temperature_search(t, s, y, temps, soften_student=True)
        assert chosen[seed] == best
        pd.testing.assert_frame_equal(tables[seed], table)
    assert dice_choice_per_seed(t, {}, y, temps) == ({}, {})
