"""Tests of skdtutor.losses against NumPy re-implementations, invariances and gradcheck."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import log_softmax as np_log_softmax  # independent NumPy references
from reference import softmax as np_softmax
from skdtutor import losses
from skdtutor.losses import (CE, KD, METHODS, SKD, DiceKD, DistillLoss, dice3, dice_loss, kd_loss,
                             make_loss, skd_loss, soft_dice, soften, sphere)

# ----------------------------------------------------------------- NumPy references


def np_kl(t, s, T):
    """KL(softmax(t/T) || softmax(s/T)) per row."""
    lt, ls = np_log_softmax(np.asarray(t) / T), np_log_softmax(np.asarray(s) / T)
    return (np.exp(lt) * (lt - ls)).sum(-1)


def np_ce(s, y):
    return -np_log_softmax(s)[np.arange(len(y)), np.asarray(y)]


def np_kd(s, t, y, T, gamma):
    kl = np_kl(t, s, T)
    if y is None:
        return float(np.mean(gamma * T * T * kl))
    return float(np.mean(gamma * T * T * kl + (1 - gamma) * np_ce(s, y)))


def np_sphere(z, m=2.0, eps=1e-7):
    z = np.asarray(z, dtype=np.float64)
    mu = z.mean(-1, keepdims=True)
    var = ((z - mu) ** 2).mean(-1, keepdims=True)  # population variance
    return m * (z - mu) / np.sqrt(var + eps)


def np_dice(p, q, eps=1e-7):
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return (2 * (p * q).sum(-1) + eps) / ((p * p).sum(-1) + (q * q).sum(-1) + eps)


def np_dice_loss(s, t, y, T, gamma, eps=1e-7):
    d = 1 - np_dice(np_softmax(np.asarray(t) / T), np_softmax(np.asarray(s) / T), eps)
    if y is None:
        return float(np.mean(gamma * d))
    return float(np.mean(gamma * d + (1 - gamma) * np_ce(s, y)))


def np_dice3(p, q, r, eps=1e-7):
    p, q, r = (np.asarray(a, np.float64) for a in (p, q, r))
    inter = (p * q * r).sum(-1)
    union = (p.sum(-1) + q.sum(-1) + r.sum(-1) - (p * q).sum(-1) - (p * r).sum(-1)
             - (q * r).sum(-1) + inter)
    return (inter + eps) / (union + eps)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def make_batch(rng, B=6, C=5, scale=3.0):
    s = rng.normal(size=(B, C)) * scale
    t = rng.normal(size=(B, C)) * scale
    y = rng.integers(0, C, size=B)
    return s, t, y


# ------------------------------------------------------------------------- soften

@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_soften_matches_numpy(rng, T):
    z = rng.normal(size=(7, 4)) * 5
    out = soften(t64(z), T)
    np.testing.assert_allclose(out.numpy(), np_softmax(z / T), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.sum(-1).numpy(), 1.0, rtol=1e-12)


def test_soften_high_temperature_flattens(rng):
    z = t64(rng.normal(size=(3, 6)) * 5)
    T = losses.TEMPERATURE_RANGE[1]
    # with |z_i| <= M every probability lies in [exp(-2M/T), exp(2M/T)] / C
    bound = (np.exp(2 * z.abs().max().item() / T) - 1) / 6
    assert np.abs(soften(z, T).numpy() - 1 / 6).max() <= bound
    assert np.abs(soften(z, T).numpy() - 1 / 6).max() < np.abs(soften(z, T / 100).numpy() - 1 / 6).max()


# ------------------------------------------------------ what float32 logits survive
LOW_T, HIGH_T = losses.TEMPERATURE_RANGE
LOW_M, HIGH_M = losses.MULTIPLIER_RANGE


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e3])  # typical logits up to hard_targets' 1e3
@pytest.mark.parametrize("T", [LOW_T, HIGH_T])
@pytest.mark.parametrize("m", [LOW_M, HIGH_M])
def test_losses_and_gradients_are_finite_in_float32_at_the_range_boundaries(rng, scale, T, m):
    s = torch.tensor(rng.normal(size=(16, 10)) * scale, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(rng.normal(size=(16, 10)) * scale, dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 10, 16))
    for loss in (KD(T=T), SKD(T=T, multiplier=m), DiceKD(T=T)):
        value = loss(s, t, y)
        (grad,) = torch.autograd.grad(value, s)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), (loss, scale)
        # float32 agrees with float64 on the same logits to the error the range allows:
        # a relative 1e-6, plus eps * T^2 for the T^2-scaled KL (see losses.TEMPERATURE_RANGE)
        ref = loss(s.detach().double(), t.double(), y).item()
        allowed = 1e-6 * abs(ref) + torch.finfo(torch.float32).eps * max(1.0, T * T)
        assert abs(value.item() - ref) <= allowed, (loss, scale)


def test_just_outside_the_range_float32_breaks_and_the_check_refuses(rng):
    s = torch.tensor(rng.normal(size=(4, 10)) * 10, dtype=torch.float32)
    t = torch.tensor(rng.normal(size=(4, 10)) * 10, dtype=torch.float32)
    # what the range guards against: T = 1e-40 overflows z / T, T = 1e300 overflows T^2
    assert not torch.isfinite(KD.per_sample(s, t, None, T=1e-40, gamma=0.9)).all()
    assert not torch.isfinite(KD.per_sample(s, t, None, T=1e300, gamma=0.9)).all()
    for T in (LOW_T * 0.99, HIGH_T * 1.01, 1e-40, 1e300, 0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="TEMPERATURE_RANGE"):
            KD(T=T)
        with pytest.raises(ValueError, match=r"temperature T"):
            soften(s, T)
    for m in (LOW_M * 0.99, HIGH_M * 1.01, 1e300, 0.0):
        with pytest.raises(ValueError, match="MULTIPLIER_RANGE"):
            SKD(multiplier=m)
    KD(T=LOW_T), KD(T=HIGH_T), SKD(multiplier=LOW_M), SKD(multiplier=HIGH_M)  # the bounds are in


# ------------------------------------------------------------------------ kd_loss

@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 10.0])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.9, 1.0])
def test_kd_loss_matches_numpy(rng, T, gamma):
    s, t, y = make_batch(rng)
    got = kd_loss(t64(s), t64(t), torch.tensor(y), T=T, gamma=gamma).item()
    assert got == pytest.approx(np_kd(s, t, y, T, gamma), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("T", [1.0, 3.0, 8.0])
def test_kd_loss_has_T_squared_factor(rng, T):
    s, t, y = make_batch(rng)
    got = kd_loss(t64(s), t64(t), torch.tensor(y), T=T, gamma=1.0).item()
    # gamma = 1: the loss is exactly T^2 * mean KL, with no CE contribution
    assert got / T ** 2 == pytest.approx(np.mean(np_kl(t, s, T)), rel=1e-10)
    # and not T * KL or plain KL (guards against a missing or wrong factor)
    if T != 1.0:
        assert got != pytest.approx(np.mean(np_kl(t, s, T)), rel=1e-3)


def test_kd_loss_gamma_zero_is_plain_cross_entropy(rng):
    s, t, y = make_batch(rng)
    got = kd_loss(t64(s), t64(t), torch.tensor(y), T=4.0, gamma=0.0).item()
    assert got == pytest.approx(np.mean(np_ce(s, y)), rel=1e-12)
    # also equal to torch's own cross-entropy (an independent implementation)
    ref = torch.nn.functional.cross_entropy(t64(s), torch.tensor(y)).item()
    assert got == pytest.approx(ref, rel=1e-12)


def test_kd_loss_gamma_weighting_is_linear(rng):
    s, t, y = make_batch(rng)
    T = 3.0
    kl = T * T * np.mean(np_kl(t, s, T))
    ce = np.mean(np_ce(s, y))
    for gamma in (0.0, 0.25, 0.5, 0.75, 1.0):
        got = kd_loss(t64(s), t64(t), torch.tensor(y), T=T, gamma=gamma).item()
        assert got == pytest.approx(gamma * kl + (1 - gamma) * ce, rel=1e-10)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 1.0])
def test_kd_loss_without_labels_is_distillation_term_only(rng, gamma):
    s, t, _ = make_batch(rng)
    T = 4.0
    got = kd_loss(t64(s), t64(t), None, T=T, gamma=gamma).item()
    assert got == pytest.approx(gamma * T * T * np.mean(np_kl(t, s, T)), rel=1e-10)


def test_kd_loss_zero_when_student_equals_teacher(rng):
    s, _, _ = make_batch(rng)
    assert kd_loss(t64(s), t64(s), None, T=2.0, gamma=1.0).item() == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------- sphere

@pytest.mark.parametrize("m", [1.0, 2.0, 5.0])
def test_sphere_matches_numpy(rng, m):
    z = rng.normal(size=(5, 7)) * 4 + 3
    np.testing.assert_allclose(sphere(t64(z), m).numpy(), np_sphere(z, m), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("C", [2, 3, 10, 100])
def test_sphere_rows_have_mean_zero_and_radius_m_sqrt_C(rng, C):
    m = 2.0
    z = torch.tensor(rng.normal(size=(8, C)) * 3, dtype=torch.float32)
    out = sphere(z, m)
    np.testing.assert_allclose(out.mean(-1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.norm(dim=-1).numpy(), m * np.sqrt(C), rtol=1e-4)


def test_sphere_constant_row_gives_zeros_and_finite_gradient():
    z = torch.tensor([[3.0, 3.0, 3.0, 3.0], [1.0, -2.0, 0.5, 4.0]], requires_grad=True)
    out = sphere(z)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(4))
    (out * torch.arange(4.0)).sum().backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------- skd_loss

@pytest.mark.parametrize("T", [1.0, 4.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("m", [1.0, 2.0])
def test_skd_loss_is_kd_on_projected_logits(rng, T, gamma, m):
    s, t, y = make_batch(rng)
    ps, pt = np_sphere(s, m), np_sphere(t, m)
    got = skd_loss(t64(s), t64(t), torch.tensor(y), T=T, gamma=gamma, multiplier=m).item()
    assert got == pytest.approx(np_kd(ps, pt, y, T, gamma), rel=1e-9, abs=1e-12)


def test_skd_loss_ce_term_uses_projected_student_logits(rng):
    s, t, y = make_batch(rng)
    got = skd_loss(t64(s), t64(t), torch.tensor(y), T=4.0, gamma=0.0, multiplier=2.0).item()
    assert got == pytest.approx(np.mean(np_ce(np_sphere(s, 2.0), y)), rel=1e-10)
    # and it is not the CE of the raw logits (the two differ for this example)
    assert abs(np.mean(np_ce(s, y)) - np.mean(np_ce(np_sphere(s, 2.0), y))) > 1e-3


@pytest.mark.parametrize("gamma", [0.0, 0.6])
def test_skd_loss_ce_on_raw_uses_raw_logits(rng, gamma):
    s, t, y = make_batch(rng)
    T, m = 4.0, 2.0
    got = skd_loss(t64(s), t64(t), torch.tensor(y), T=T, gamma=gamma, multiplier=m,
                   ce_on_raw=True).item()
    ref = np.mean(gamma * T * T * np_kl(np_sphere(t, m), np_sphere(s, m), T)
                  + (1 - gamma) * np_ce(s, y))
    assert got == pytest.approx(ref, rel=1e-10)


def test_skd_loss_without_labels(rng):
    s, t, _ = make_batch(rng)
    got = skd_loss(t64(s), t64(t), None, T=2.0, gamma=0.7).item()
    assert got == pytest.approx(0.7 * 4.0 * np.mean(np_kl(np_sphere(t), np_sphere(s), 2.0)), rel=1e-10)


# ------------------------------------------------------------------- invariances

def _rows_not_flat(a, min_var=0.1):
    return bool((np.asarray(a).var(-1) > min_var).all())


logit_arrays = st.tuples(st.integers(1, 4), st.integers(2, 6)).flatmap(
    lambda bc: st.tuples(
        hnp.arrays(np.float64, bc, elements=st.floats(-8, 8, allow_nan=False, allow_infinity=False)),
        hnp.arrays(np.float64, bc, elements=st.floats(-8, 8, allow_nan=False, allow_infinity=False)),
        hnp.arrays(np.float64, (bc[0], 1), elements=st.floats(-50, 50)),   # shifts
        hnp.arrays(np.float64, (bc[0], 1), elements=st.floats(0.5, 5.0)),  # scales
        hnp.arrays(np.int64, (bc[0],), elements=st.integers(0, bc[1] - 1)),
    ))

INVARIANCE_SETTINGS = settings(max_examples=60, deadline=None,
                               suppress_health_check=[HealthCheck.filter_too_much,
                                                      HealthCheck.too_slow])


@INVARIANCE_SETTINGS
@given(data=logit_arrays, T=st.sampled_from([1.0, 2.0, 4.0, 8.0]),
       gamma=st.sampled_from([0.0, 0.5, 0.9, 1.0]), with_labels=st.booleans())
def test_skd_loss_invariant_to_per_row_shift_and_scale(data, T, gamma, with_labels):
    s, t, shift, scale, y = data
    assume(_rows_not_flat(s) and _rows_not_flat(t))
    labels = torch.tensor(y) if with_labels else None
    base = skd_loss(t64(s), t64(t), labels, T=T, gamma=gamma).item()
    # shift / scale the student, the teacher, and both at once (different factors)
    for s2, t2 in ((s * scale + shift, t), (s, t * scale + shift),
                   (s * scale + shift, t * scale[::-1] - shift[::-1])):
        moved = skd_loss(t64(s2), t64(t2), labels, T=T, gamma=gamma).item()
        assert moved == pytest.approx(base, rel=1e-5, abs=1e-6)


@INVARIANCE_SETTINGS
@given(data=logit_arrays, T=st.sampled_from([1.0, 2.0, 4.0, 8.0]),
       gamma=st.sampled_from([0.0, 0.5, 0.9, 1.0]), with_labels=st.booleans())
def test_kd_loss_invariant_to_per_row_shift(data, T, gamma, with_labels):
    s, t, shift, _, y = data
    labels = torch.tensor(y) if with_labels else None
    base = kd_loss(t64(s), t64(t), labels, T=T, gamma=gamma).item()
    for s2, t2 in ((s + shift, t), (s, t + shift), (s + shift, t - shift[::-1])):
        moved = kd_loss(t64(s2), t64(t2), labels, T=T, gamma=gamma).item()
        assert moved == pytest.approx(base, rel=1e-8, abs=1e-9)


def test_kd_loss_changes_when_logits_are_scaled(rng):
    s, t, y = make_batch(rng, scale=2.0)
    labels = torch.tensor(y)
    base = kd_loss(t64(s), t64(t), labels, T=4.0, gamma=0.9).item()
    for s2, t2 in ((3 * s, t), (s, 3 * t), (0.5 * s, 0.5 * t)):
        changed = kd_loss(t64(s2), t64(t2), labels, T=4.0, gamma=0.9).item()
        assert abs(changed - base) > 1e-3 * abs(base)
        assert changed == pytest.approx(np_kd(s2, t2, y, 4.0, 0.9), rel=1e-10)
    # while skd_loss does not notice the same scalings
    base_skd = skd_loss(t64(s), t64(t), labels, T=4.0, gamma=0.9).item()
    for s2, t2 in ((3 * s, t), (s, 3 * t), (0.5 * s, 0.5 * t)):
        assert skd_loss(t64(s2), t64(t2), labels, T=4.0, gamma=0.9).item() == pytest.approx(
            base_skd, rel=1e-6)


# ------------------------------------------------------------------ Dice family

def test_soft_dice_matches_numpy(rng):
    p = np_softmax(rng.normal(size=(6, 5)) * 2)
    q = np_softmax(rng.normal(size=(6, 5)) * 2)
    out = soft_dice(t64(p), t64(q))
    assert out.shape == (6,)
    np.testing.assert_allclose(out.numpy(), np_dice(p, q), rtol=1e-12)
    # arbitrary non-negative (unnormalised) vectors follow the same formula
    a, b = rng.uniform(0, 3, size=(4, 3)), rng.uniform(0, 3, size=(4, 3))
    np.testing.assert_allclose(soft_dice(t64(a), t64(b), eps=0.01).numpy(), np_dice(a, b, 0.01),
                               rtol=1e-12)


def test_soft_dice_identity_symmetry_and_range(rng):
    p = np_softmax(rng.normal(size=(6, 5)) * 2)
    q = np_softmax(rng.normal(size=(6, 5)) * 2)
    np.testing.assert_allclose(soft_dice(t64(p), t64(p)).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(soft_dice(t64(p), t64(q)).numpy(), soft_dice(t64(q), t64(p)).numpy(),
                               rtol=1e-14)
    d = soft_dice(t64(p), t64(q)).numpy()
    assert ((d > 0) & (d < 1)).all()
    # disjoint supports: Dice is eps / (...) ~ 0
    a = t64([[1.0, 0.0, 0.0]])
    b = t64([[0.0, 0.5, 0.5]])
    assert soft_dice(a, b).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_dice_loss_matches_numpy(rng, T, gamma):
    s, t, y = make_batch(rng)
    got = dice_loss(t64(s), t64(t), torch.tensor(y), T=T, gamma=gamma).item()
    assert got == pytest.approx(np_dice_loss(s, t, y, T, gamma), rel=1e-10, abs=1e-12)
    got_nolab = dice_loss(t64(s), t64(t), None, T=T, gamma=gamma).item()
    assert got_nolab == pytest.approx(np_dice_loss(s, t, None, T, gamma), rel=1e-10, abs=1e-12)


def test_dice3_matches_inclusion_exclusion(rng):
    p = np_softmax(rng.normal(size=(5, 4)) * 2)
    q = np_softmax(rng.normal(size=(5, 4)) * 2)
    r = np_softmax(rng.normal(size=(5, 4)) * 2)
    out = dice3(t64(p), t64(q), t64(r))
    assert out.shape == (5,)
    np.testing.assert_allclose(out.numpy(), np_dice3(p, q, r), rtol=1e-12)
    # identical arguments: a hand-worked case, p = q = r = onehot -> 1
    e = t64([[0.0, 1.0, 0.0]])
    assert dice3(e, e, e).item() == pytest.approx(1.0, rel=1e-12)


def test_dice3_with_one_hot_labels_numerator_only_sees_true_class(rng):
    C, B = 5, 6
    p = np_softmax(rng.normal(size=(B, C)) * 2)
    q = np_softmax(rng.normal(size=(B, C)) * 2)
    y = rng.integers(0, C, size=B)
    r = np.eye(C)[y]
    eps = 1e-7
    d3 = dice3(t64(p), t64(q), t64(r), eps=eps).numpy()
    union = (p.sum(-1) + q.sum(-1) + r.sum(-1) - (p * q).sum(-1) - (p * r).sum(-1)
             - (q * r).sum(-1) + (p * q * r).sum(-1))
    numerator = d3 * (union + eps) - eps
    rows = np.arange(B)
    np.testing.assert_allclose(numerator, p[rows, y] * q[rows, y], rtol=1e-10)


def test_dice3_gradient_matches_quotient_rule(rng):
    """d D3 / d p_k = (q_k r_k U - I (1 - q_k)(1 - r_k)) / U^2 with I, U shifted by eps.

    With one-hot r the first (numerator) part is zero on every incorrect class:
    the teacher's incorrect classes reach D3 only through the union.
    """
    C, B = 4, 5
    p = np_softmax(rng.normal(size=(B, C)))
    q = np_softmax(rng.normal(size=(B, C)))
    y = rng.integers(0, C, size=B)
    r = np.eye(C)[y]
    eps = 1e-7
    pt = t64(p, grad=True)
    dice3(pt, t64(q), t64(r), eps=eps).sum().backward()
    inter = (p * q * r).sum(-1, keepdims=True) + eps
    union = (p.sum(-1) + q.sum(-1) + r.sum(-1) - (p * q).sum(-1) - (p * r).sum(-1)
             - (q * r).sum(-1) + (p * q * r).sum(-1))[:, None] + eps
    expected = (q * r * union - inter * (1 - q) * (1 - r)) / union ** 2
    np.testing.assert_allclose(pt.grad.numpy(), expected, rtol=1e-9, atol=1e-12)
    incorrect = r == 0
    np.testing.assert_allclose(pt.grad.numpy()[incorrect],
                               (-inter * (1 - q) / union ** 2)[incorrect], rtol=1e-9)


def test_dice3_one_hot_labels_invariant_to_joint_permutation_of_wrong_classes(rng):
    C, B = 6, 4
    p = np_softmax(rng.normal(size=(B, C)) * 2)
    q = np_softmax(rng.normal(size=(B, C)) * 2)
    y = np.array([0, 2, 5, 3])
    r = np.eye(C)[y]
    p2, q2 = p.copy(), q.copy()
    for i in range(B):
        wrong = np.array([k for k in range(C) if k != y[i]])
        perm = rng.permutation(wrong)
        p2[i, wrong], q2[i, wrong] = p[i, perm], q[i, perm]
    np.testing.assert_allclose(dice3(t64(p2), t64(q2), t64(r)).numpy(),
                               dice3(t64(p), t64(q), t64(r)).numpy(), rtol=1e-12)


# ---------------------------------------------------------------------- gradcheck

def _logits(rng, shape=(3, 4), scale=2.0, grad=True):
    return t64(rng.normal(size=shape) * scale, grad=grad)


@pytest.mark.parametrize("labelled", [True, False])
def test_gradcheck_kd_loss(rng, labelled):
    s, t = _logits(rng), _logits(rng)
    y = torch.tensor([0, 3, 1]) if labelled else None
    assert torch.autograd.gradcheck(lambda a, b: kd_loss(a, b, y, T=3.0, gamma=0.7), (s, t))


@pytest.mark.parametrize("ce_on_raw", [False, True])
def test_gradcheck_skd_loss(rng, ce_on_raw):
    s, t = _logits(rng), _logits(rng)
    y = torch.tensor([2, 0, 1])
    assert torch.autograd.gradcheck(
        lambda a, b: skd_loss(a, b, y, T=2.0, gamma=0.6, multiplier=1.5, ce_on_raw=ce_on_raw), (s, t))


def test_gradcheck_dice_loss(rng):
    s, t = _logits(rng), _logits(rng)
    y = torch.tensor([1, 1, 3])
    assert torch.autograd.gradcheck(lambda a, b: dice_loss(a, b, y, T=2.0, gamma=0.8), (s, t))


def test_gradcheck_sphere(rng):
    z = _logits(rng, (4, 5))
    assert torch.autograd.gradcheck(lambda a: sphere(a, 2.0), (z,))


def test_gradcheck_soft_dice(rng):
    p = t64(rng.uniform(0.1, 1.0, size=(3, 4)), grad=True)
    q = t64(rng.uniform(0.1, 1.0, size=(3, 4)), grad=True)
    assert torch.autograd.gradcheck(soft_dice, (p, q))


def test_gradcheck_dice3(rng):
    p, q, r = (t64(rng.uniform(0.1, 1.0, size=(3, 4)), grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(dice3, (p, q, r))


# ------------------------------------------------------------ extreme logits

EXTREME = [[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4], [0.0, 1e4, -1e4]]
EXTREME_T = [[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0], [0.0, 1e4, -1e4]]


@pytest.mark.parametrize("fn", [kd_loss, skd_loss, dice_loss], ids=["kd", "skd", "dice"])
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_give_finite_loss_and_gradients(fn, T, dtype):
    s = torch.tensor(EXTREME, dtype=dtype, requires_grad=True)
    t = torch.tensor(EXTREME_T, dtype=dtype, requires_grad=True)
    y = torch.tensor([1, 2, 1])
    for labels in (y, None):
        s.grad = t.grad = None
        loss = fn(s, t, labels, T=T, gamma=0.9)
        assert torch.isfinite(loss), loss
        loss.backward()
        assert torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all()


def test_extreme_logits_kd_value_matches_numpy():
    T = 1.0
    got = kd_loss(t64(EXTREME), t64(EXTREME_T), None, T=T, gamma=1.0).item()
    assert got == pytest.approx(np.mean(np_kl(EXTREME_T, EXTREME, T)), rel=1e-10)


# --------------------------------------------------------------- validation

PAIR_LOSSES = [kd_loss, skd_loss, dice_loss]
PAIR_IDS = ["kd", "skd", "dice"]


def _ok():
    return torch.zeros(3, 4).normal_(), torch.zeros(3, 4).normal_(), torch.tensor([0, 1, 3])


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
def test_mismatched_shapes_raise(fn):
    s, t, y = _ok()
    with pytest.raises(ValueError, match="same shape"):
        fn(s, torch.randn(3, 5), y)
    with pytest.raises(ValueError, match="same shape"):
        fn(s, torch.randn(2, 4), None)


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
@pytest.mark.parametrize("shape", [(4,), (2, 3, 4)])
def test_non_2d_logits_raise(fn, shape):
    x = torch.randn(*shape)
    with pytest.raises(ValueError, match="2-D"):
        fn(x, x.clone(), None)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4)])
def test_non_2d_logits_raise_soften_and_sphere(shape):
    with pytest.raises(ValueError, match="2-D"):
        soften(torch.randn(*shape))
    with pytest.raises(ValueError, match="2-D"):
        sphere(torch.randn(*shape))


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
@pytest.mark.parametrize("T", [0, 0.0, -1, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(fn, T):
    s, t, y = _ok()
    with pytest.raises(ValueError, match="temperature"):
        fn(s, t, y, T=T)


@pytest.mark.parametrize("T", [0, -1.0])
def test_soften_bad_temperature_raises(T):
    with pytest.raises(ValueError, match="temperature"):
        soften(torch.randn(2, 3), T)


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
@pytest.mark.parametrize("gamma", [-0.1, 1.5])
def test_gamma_outside_unit_interval_raises(fn, gamma):
    s, t, y = _ok()
    with pytest.raises(ValueError, match="gamma"):
        fn(s, t, y, gamma=gamma)


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
@pytest.mark.parametrize("bad", [-1, 4])
def test_labels_out_of_range_raise(fn, bad):
    s, t, _ = _ok()  # 4 classes: valid labels are 0..3
    with pytest.raises(ValueError, match="labels"):
        fn(s, t, torch.tensor([0, bad, 1]))


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
def test_labels_wrong_shape_or_dtype_raise(fn):
    s, t, _ = _ok()
    with pytest.raises(ValueError, match="labels"):
        fn(s, t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        fn(s, t, torch.tensor([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("fn", PAIR_LOSSES, ids=PAIR_IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("which", ["student", "teacher"])
def test_non_finite_logits_raise(fn, bad, which):
    s, t, y = _ok()
    (s if which == "student" else t)[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(s, t, y)


def test_non_finite_raise_soften_sphere():
    x = torch.randn(2, 3)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        soften(x)
    with pytest.raises(ValueError, match="NaN"):
        sphere(x)


@pytest.mark.parametrize("m", [0, 0.0, -2.0])
def test_bad_multiplier_raises(m):
    s, t, y = _ok()
    with pytest.raises(ValueError, match="multiplier"):
        skd_loss(s, t, y, multiplier=m)
    with pytest.raises(ValueError, match="multiplier"):
        sphere(s, m)


def test_loss_objects_validate_hyperparameters():
    with pytest.raises(ValueError, match="temperature"):
        KD(T=0)
    with pytest.raises(ValueError, match="temperature"):
        SKD(T=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        DiceKD(T=0.0)
    with pytest.raises(ValueError, match="gamma"):
        KD(gamma=1.5)
    with pytest.raises(ValueError, match="gamma"):
        DiceKD(gamma=-0.1)
    with pytest.raises(ValueError, match="multiplier"):
        SKD(multiplier=0)


def test_soft_dice_and_dice3_reject_negative_or_mismatched_probabilities():
    p = torch.rand(2, 3)
    with pytest.raises(ValueError, match="non-negative"):
        soft_dice(p, p - 2)
    with pytest.raises(ValueError, match="same shape"):
        soft_dice(p, torch.rand(2, 4))
    with pytest.raises(ValueError, match="non-negative"):
        dice3(p, p, -p)
    with pytest.raises(ValueError, match="same shape"):
        dice3(p, p, torch.rand(3, 3))


# ----------------------------------------------------------------- loss objects

def test_loss_objects_equal_pure_functions(rng):
    s_np, t_np, y_np = make_batch(rng)
    s, t, y = t64(s_np), t64(t_np), torch.tensor(y_np)
    for labels in (y, None):
        assert KD(T=3.0, gamma=0.8)(s, t, labels).item() == pytest.approx(
            kd_loss(s, t, labels, T=3.0, gamma=0.8).item(), rel=1e-12)
        assert SKD(T=3.0, gamma=0.8, multiplier=1.5)(s, t, labels).item() == pytest.approx(
            skd_loss(s, t, labels, T=3.0, gamma=0.8, multiplier=1.5).item(), rel=1e-12)
        assert DiceKD(T=3.0, gamma=0.8)(s, t, labels).item() == pytest.approx(
            dice_loss(s, t, labels, T=3.0, gamma=0.8).item(), rel=1e-12)
    assert SKD(T=2.0, gamma=0.5, ce_on_raw=True)(s, t, y).item() == pytest.approx(
        skd_loss(s, t, y, T=2.0, gamma=0.5, ce_on_raw=True).item(), rel=1e-12)
    # and the object values match the NumPy references too
    assert KD(T=3.0, gamma=0.8)(s, t, y).item() == pytest.approx(np_kd(s_np, t_np, y_np, 3.0, 0.8),
                                                               rel=1e-10)
    assert CE()(s, None, y).item() == pytest.approx(np.mean(np_ce(s_np, y_np)), rel=1e-12)


def test_ce_needs_labels(rng):
    s = t64(rng.normal(size=(2, 3)))
    with pytest.raises(ValueError, match="labels"):
        CE()(s, None, None)


def test_label_mask_zeroes_the_ce_term(rng):
    s_np, t_np, y_np = make_batch(rng)
    mask = np.array([1, 0, 1, 1, 0, 1])
    s, t, y = t64(s_np), t64(t_np), torch.tensor(y_np)
    got = KD.per_sample(s, t, y, torch.tensor(mask), T=2.0, gamma=0.4).numpy()
    ref = 0.4 * 4.0 * np_kl(t_np, s_np, 2.0) + 0.6 * np_ce(s_np, y_np) * mask
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    np.testing.assert_allclose(CE.per_sample(s, None, y, torch.tensor(mask)).numpy(),
                               np_ce(s_np, y_np) * mask, rtol=1e-12)


def test_make_loss():
    assert isinstance(make_loss("ce"), CE)
    kd = make_loss("KD", T=2, gamma=0.5)
    assert isinstance(kd, KD) and kd.T == 2.0 and kd.gamma == 0.5
    skd = make_loss("skd", T=3.0, gamma=0.7, multiplier=1.5)
    assert isinstance(skd, SKD) and (skd.T, skd.gamma, skd.multiplier) == (3.0, 0.7, 1.5)
    assert isinstance(make_loss("dice"), DiceKD)
    assert set(METHODS) == {"ce", "kd", "skd", "dice"}
    with pytest.raises(ValueError, match="unknown method"):
        make_loss("unknown")
    with pytest.raises(ValueError, match="temperature"):
        make_loss("kd", T=0)
    with pytest.raises(ValueError, match="multiplier"):  # KD has no multiplier: named, not ignored
        make_loss("kd", T=2.0, multiplier=2.0)
    with pytest.raises(ValueError, match="hyperparameters are"):
        make_loss("ce", T=4.0)


def test_a_subclass_of_distill_loss_is_a_new_method(monkeypatch):
    """Adding a method is one class: the registry, make_loss and the stacking keys follow."""
    registry = dict(METHODS)  # keep the registry of other tests intact
    monkeypatch.setattr(losses.objects, "METHODS", registry)  # the module that registers
    monkeypatch.setattr(losses, "METHODS", registry)

    @dataclass(frozen=True)
    class Squared(DistillLoss):
        """Mean squared difference of the probabilities at temperature T (test-only method)."""

        T: float = 1.0
        name: ClassVar[str] = "squared"
        stackable: ClassVar[tuple[str, ...]] = ("T",)

        @staticmethod
        def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T):
            diff = torch.softmax(student_logits / T, -1) - torch.softmax(teacher_logits / T, -1)
            return (diff ** 2).sum(-1)

    assert losses.METHODS["squared"] is Squared and "squared" not in METHODS
    loss = losses.make_loss("squared", T=2)
    assert isinstance(loss, Squared) and loss.T == 2.0 and isinstance(loss.T, float)
    with pytest.raises(ValueError, match="gamma"):
        losses.make_loss("squared", gamma=0.5)
    s, t = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    expected = ((np_softmax(s.numpy(), 2.0) - np_softmax(t.numpy(), 2.0)) ** 2).sum(-1).mean()
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-12)
    assert loss.static_key() == (Squared,) and Squared.hparam_names() == ("T",)
    with pytest.raises(ValueError, match="taken"):
        @dataclass(frozen=True)
        class Clash(DistillLoss):
            name: ClassVar[str] = "squared"


# ------------------------------------------------------------------ broadcasting

@pytest.mark.parametrize("cls", [KD, SKD, DiceKD], ids=["kd", "skd", "dice"])
@pytest.mark.parametrize("masked", [False, True])
def test_per_sample_broadcasts_over_stacked_members(rng, cls, masked):
    n, B, C = 3, 5, 4
    Ts = [1.0, 4.0, 10.0]
    gammas = [0.9, 0.5, 1.0]
    mults = [2.0, 1.0, 3.0]
    s = torch.tensor(rng.normal(size=(n, B, C)) * 3, dtype=torch.float32)
    t = torch.tensor(rng.normal(size=(n, B, C)) * 3, dtype=torch.float32)
    y = torch.tensor(rng.integers(0, C, size=(n, B)))
    mask = torch.tensor(rng.integers(0, 2, size=(n, B))) if masked else None
    hp = {"T": torch.tensor(Ts).view(n, 1, 1), "gamma": torch.tensor(gammas).view(n, 1, 1)}
    if cls is SKD:
        hp["multiplier"] = torch.tensor(mults).view(n, 1, 1)
    stacked = cls.per_sample(s, t, y, mask, **hp)
    assert stacked.shape == (n, B)
    fn = {KD: kd_loss, SKD: skd_loss, DiceKD: dice_loss}[cls]
    for i in range(n):
        kw = {"T": Ts[i], "gamma": gammas[i]}
        if cls is SKD:
            kw["multiplier"] = mults[i]
        if masked:
            member = cls.per_sample(s[i], t[i], y[i], mask[i], **kw)
        else:
            member = fn(s[i], t[i], y[i], **kw)
            np.testing.assert_allclose(stacked[i].mean().item(), member.item(), rtol=1e-5)
            member = cls.per_sample(s[i], t[i], y[i], None, **kw)
        np.testing.assert_allclose(stacked[i].numpy(), member.numpy(), rtol=1e-5, atol=1e-6)
    if cls is KD:  # independent NumPy check of every member
        for i in range(n):
            m = np.ones(B) if mask is None else mask[i].numpy()
            ref = (gammas[i] * Ts[i] ** 2 * np_kl(t[i].numpy(), s[i].numpy(), Ts[i])
                   + (1 - gammas[i]) * np_ce(s[i].numpy(), y[i].numpy()) * m)
            np.testing.assert_allclose(stacked[i].numpy(), ref, rtol=1e-4, atol=1e-5)


def test_numpy_and_tensor_scalars_are_accepted_as_hyperparameters():
    import numpy as np
    s = torch.randn(4, 5)
    t = torch.randn(4, 5)
    ref = kd_loss(s, t, T=2.0, gamma=0.5)
    assert torch.allclose(kd_loss(s, t, T=np.float32(2.0), gamma=np.float64(0.5)), ref)
    assert torch.allclose(kd_loss(s, t, T=torch.tensor(2.0), gamma=0.5), ref)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(s, t, T=np.float32(0.0))
