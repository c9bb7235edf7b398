"""Choosing the distillation temperature with a two-component Dice criterion.

The seed notes propose to pick the temperature that best "smooths" the teacher:
soft enough to resemble what a small student can express, sharp enough to stay
faithful to the labels. Both resemblances are measured with the soft Dice of
:func:`skdtutor.losses.soft_dice`, and the temperature minimising their sum wins.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from .losses import check_labels, check_pair, check_temperature, soft_dice

__all__ = ["dice_temperature_search", "best_temperature", "dice_choice_per_seed", "DEFAULT_TEMPERATURES"]

DEFAULT_TEMPERATURES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)


def dice_temperature_search(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                            labels: torch.Tensor,
                            temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
                            soften_student: bool = False, eps: float = 1e-7):
    r"""Two-component Dice search for the distillation temperature.

    For every candidate :math:`T`, averaged over the samples:

    .. math::
        \mathrm{student\_term}(T) &= 1 - D\big(\mathrm{softmax}(t/T),\ \mathrm{softmax}(s/T_s)\big) \\
        \mathrm{label\_term}(T) &= 1 - D\big(\mathrm{softmax}(t/T),\ \mathrm{onehot}(y)\big) \\
        \mathrm{total}(T) &= \mathrm{student\_term}(T) + \mathrm{label\_term}(T)

    where :math:`D` is the soft Dice and :math:`T_s = 1`, or :math:`T_s = T` with
    ``soften_student=True``. Raising :math:`T` moves the teacher away from the
    one-hot labels (label term up) and, for a student less confident than the
    teacher, towards the student (student term down); the best temperature is
    the arg-min of the total. The student-versus-labels pair is left out on
    purpose: it does not depend on :math:`T`.

    Parameters
    ----------
    teacher_logits, student_logits : (n, C) tensors on the same samples.
        The student logits should come from a student of the intended
        architecture trained on hard labels only (cross-entropy): the search
        asks how far the teacher must be softened to meet what that student
        can express. Use held-out (validation) samples when you can.
    labels : (n,) integer tensor.
    temperatures : candidate temperatures, each > 0.
    soften_student : also soften the student at the same ``T`` (default: the
        student's plain softmax).

    Returns
    -------
    best_temperature : float
    table : pandas.DataFrame with columns ``T``, ``student_term``,
        ``label_term``, ``total``, one row per temperature, in the given order.
    """
    check_pair(student_logits, teacher_logits)
    if labels is None:
        raise ValueError("labels are required: the label term compares the softened teacher "
                         "with one-hot labels")
    check_labels(labels, *teacher_logits.shape)
    temperatures = list(temperatures)
    if not temperatures:
        raise ValueError("temperatures is empty; pass at least one candidate temperature")
    for T in temperatures:
        check_temperature(T)
    teacher_logits = teacher_logits.detach().double()
    student_logits = student_logits.detach().double()
    onehot = F.one_hot(labels.long(), teacher_logits.shape[1]).double()
    rows = []
    for T in temperatures:
        p_teacher = torch.softmax(teacher_logits / T, dim=-1)
        p_student = torch.softmax(student_logits / (T if soften_student else 1.0), dim=-1)
        student_term = (1 - soft_dice(p_teacher, p_student, eps)).mean().item()
        label_term = (1 - soft_dice(p_teacher, onehot, eps)).mean().item()
        rows.append({"T": float(T), "student_term": student_term, "label_term": label_term,
                     "total": student_term + label_term})
    table = pd.DataFrame(rows)
    return best_temperature(table), table


def best_temperature(table: pd.DataFrame, among: Sequence[float] | None = None) -> float:
    """The temperature of a :func:`dice_temperature_search` table with the smallest
    ``total`` (the first such row on a tie), or the best of the candidates ``among`` only,
    each of which must be a row of the table: ``best_temperature(table, among=[1, 4, 16])``
    is what a search over ``[1, 4, 16]`` returns."""
    rows = table
    if among is not None:
        among = [float(T) for T in among]
        missing = sorted(set(among) - set(table["T"]))
        if not among or missing:
            raise ValueError(f"among must hold temperatures of the table; {missing or 'none'} "
                             f"not in {table['T'].tolist()}")
        rows = table[table["T"].isin(among)]
    return float(rows.loc[rows["total"].idxmin(), "T"])


def dice_choice_per_seed(teacher_logits: torch.Tensor, student_logits: Mapping[int, torch.Tensor],
                         labels: torch.Tensor,
                         temperatures: Sequence[float] = DEFAULT_TEMPERATURES, **options):
    """:func:`dice_temperature_search` for every seed's CE student against one teacher, on
    the same samples: ``student_logits`` maps a seed to its student's logits. Returns
    ``({seed: best T}, {seed: table})``, in the order of ``student_logits`` (both empty when
    it is). ``options`` are those of :func:`dice_temperature_search` (``soften_student``)."""
    chosen, tables = {}, {}
    for seed, logits in student_logits.items():
        chosen[seed], tables[seed] = dice_temperature_search(teacher_logits, logits, labels,
                                                             temperatures, **options)
    return chosen, tables

