"""The stacked sweep's fast path: the closed-form gradient of KD/SKD/CE (skdtutor.losses.fused),
the teacher terms a sweep computes once (skdtutor.sweep_loss) and the transposed product of a
small layer (skdtutor.stacking), against NumPy, autograd of the reference formulas and gradcheck."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from reference import log_softmax as np_log_softmax
from skdtutor import stacking, sweep, sweep_loss
from skdtutor.losses import CE, KD, SKD, DiceKD

K, B, C = 3, 7, 5
T_VALUES, GAMMA_VALUES, M_VALUES = (1.0, 2.5, 6.0), (0.0, 0.6, 1.0), (0.5, 2.0, 4.0)


def stacked(values):
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


def batch(rng, scale=3.0):
    s = torch.tensor(rng.normal(size=(K, B, C)) * scale, dtype=torch.float64)
    t = torch.tensor(rng.normal(size=(K, B, C)) * scale, dtype=torch.float64)
    y = torch.tensor(rng.integers(0, C, size=(K, B)))
    mask = torch.tensor(rng.random((K, B)) < 0.6)
    return s, t, y, mask


def np_sphere(z, m):
    z = np.asarray(z, dtype=np.float64)
    mu = z.mean(-1, keepdims=True)
    return m * (z - mu) / np.sqrt(((z - mu) ** 2).mean(-1, keepdims=True) + 1e-7)


def np_rows(s, t, y, mask, T, gamma, soft=True):
    """Per-row loss of one member, written out in NumPy: gamma T^2 KL + (1 - gamma) mask CE."""
    out = np.zeros(len(s))
    if soft:
        lt, ls = np_log_softmax(t / T), np_log_softmax(s / T)
        out += gamma * T * T * (np.exp(lt) * (lt - ls)).sum(-1)
    if y is not None:
        ce = -np_log_softmax(s)[np.arange(len(y)), y]
        out += (1 - gamma if soft else 1.0) * ce * (1.0 if mask is None else mask)
    return out


def fast(loss_cls, s, t, y, mask, **hp):
    teacher_terms, per_sample_terms = loss_cls.terms_functions()
    return per_sample_terms(s, teacher_terms(t, **hp), y, mask, **hp)


def cases():
    hp_kd = dict(T=stacked(T_VALUES), gamma=stacked(GAMMA_VALUES))
    return [("kd", KD, hp_kd), ("kd-numbers", KD, dict(T=3.0, gamma=0.7)),
            ("skd", SKD, dict(hp_kd, multiplier=stacked(M_VALUES), ce_on_raw=False)),
            ("skd-raw", SKD, dict(hp_kd, multiplier=2.0, ce_on_raw=True)), ("ce", CE, {})]


def member_hp(hp, j):
    return {k: (v.view(-1)[j].item() if isinstance(v, torch.Tensor) else v) for k, v in hp.items()}


@pytest.mark.parametrize("labels", ["labels", "masked", "none"])
@pytest.mark.parametrize("name, loss_cls, hp", cases(), ids=[c[0] for c in cases()])
def test_fast_path_values_match_numpy_member_by_member(rng, name, loss_cls, hp, labels):
    if loss_cls is CE and labels == "none":
        pytest.skip("CE needs labels")
    s, t, y, mask = batch(rng)
    y_in = None if labels == "none" else y
    m_in = mask if labels == "masked" else None
    got = fast(loss_cls, s, t, y_in, m_in, **hp)
    assert got.shape == (K, B)
    for j in range(K):
        h = member_hp(hp, j)
        sj, tj = s[j].numpy(), t[j].numpy()
        yj = None if y_in is None else y[j].numpy()
        mj = None if m_in is None else mask[j].numpy().astype(float)
        if loss_cls is CE:
            want = np_rows(sj, None, yj, mj, 1.0, 0.0, soft=False)
        elif loss_cls is KD:
            want = np_rows(sj, tj, yj, mj, h["T"], h["gamma"])
        else:
            ss, ts = np_sphere(sj, h["multiplier"]), np_sphere(tj, h["multiplier"])
            want = np_rows(ss, ts, None, None, h["T"], h["gamma"])
            if yj is not None:  # the hard term on the sphere (or on the raw logits)
                raw = sj if h["ce_on_raw"] else ss
                ce = -np_log_softmax(raw)[np.arange(B), yj]
                want = want + (1 - h["gamma"]) * ce * (1.0 if mj is None else mj)
        np.testing.assert_allclose(got[j].numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("labels", ["labels", "masked", "none"])
@pytest.mark.parametrize("name, loss_cls, hp", cases(), ids=[c[0] for c in cases()])
def test_fast_path_gradient_is_autograd_of_the_reference_formula_and_passes_gradcheck(
        rng, name, loss_cls, hp, labels):
    if loss_cls is CE and labels == "none":
        pytest.skip("CE needs labels")
    s, t, y, mask = batch(rng)
    y_in = None if labels == "none" else y
    m_in = mask if labels == "masked" else None
    weights = torch.tensor(rng.normal(size=(K, B)), dtype=torch.float64)  # an arbitrary upstream gradient

    def gradient(fn):
        x = s.clone().requires_grad_()
        (grad,) = torch.autograd.grad((fn(x) * weights).sum(), x)
        return grad

    want = gradient(lambda x: loss_cls.per_sample(x, t, y_in, m_in, **hp))  # plain autograd
    got = gradient(lambda x: fast(loss_cls, x, t, y_in, m_in, **hp))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    x = s.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: fast(loss_cls, a, t, y_in, m_in, **hp), (x,))


def test_a_subclass_that_overrides_per_sample_alone_keeps_its_own_loss(rng):
    """The fast path belongs to KD's formula: a subclass with another per_sample must not get it."""

    @dataclass(frozen=True)
    class HalfKD(KD):
        name: ClassVar[str] = ""  # unnamed: not registered

        @staticmethod
        def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *, T, gamma):
            return 0.5 * KD.per_sample(student_logits, teacher_logits, labels, label_mask, T=T, gamma=gamma)

    assert KD.terms_functions() == (KD.teacher_terms, KD.per_sample_terms)
    assert HalfKD.terms_functions()[1] is HalfKD.per_sample
    assert DiceKD.terms_functions()[1] is DiceKD.per_sample
    s, t, y, _ = batch(rng)
    hp = dict(T=2.0, gamma=0.5)
    torch.testing.assert_close(fast(HalfKD, s, t, y, None, **hp), 0.5 * KD.per_sample(s, t, y, None, **hp))


def test_stacked_loss_reads_the_teacher_rows_of_each_batch(rng):
    """Terms computed once and gathered per epoch give, batch by batch, the loss of the batch's own
    teacher rows (gathered directly, reference formulas), for mixed groups and two teachers."""
    n, batch_size = 23, 8
    members = [sweep.SweepMember(KD(T=1.0, gamma=0.75), 0), sweep.SweepMember(DiceKD(T=2.0), 1, teacher=1),
               sweep.SweepMember(KD(T=4.0, gamma=0.5), 2, teacher=1), sweep.SweepMember(CE(), 0),
               sweep.SweepMember(SKD(T=2.0, multiplier=3.0), 1)]
    order, groups = sweep_loss.group_members(members)
    teachers = torch.tensor(rng.normal(size=(2, n, C)) * 3, dtype=torch.float64)
    rows = teachers[[members[i].teacher for i in order]]  # (members, n, C) in stacked order
    loss = sweep_loss.StackedLoss(groups, rows)
    y = torch.tensor(rng.integers(0, C, size=n))
    for _ in range(2):  # two epochs: the reused buffers hold the second epoch's rows
        perms = torch.stack([torch.randperm(n) for _ in members])
        for b, terms in enumerate(loss.epoch_batches(perms, batch_size)):
            idx = perms[:, b * batch_size:(b + 1) * batch_size]
            logits = torch.tensor(rng.normal(size=(len(members), idx.shape[1], C)), dtype=torch.float64)
            yb = y[idx]
            got = loss(logits, terms, yb, None)
            for j, i in enumerate(order):
                m = members[i]
                tb = teachers[m.teacher][idx[j]]
                want = type(m.loss).per_sample(logits[j], tb, yb[j], None, **m.loss.hparams()).mean()
                torch.testing.assert_close(got[j], want, rtol=1e-10, atol=1e-12)


def test_transposed_product_matches_linear_and_passes_gradcheck(rng):
    """Over the first ``out`` rows of padded weights: nn.Linear's values, gradcheck, zero gradients
    for the padding rows."""
    n, b, d_in, out, rows = 3, 6, 4, 5, 8
    x = torch.tensor(rng.normal(size=(n, b, d_in)), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(rng.normal(size=(n, rows, d_in)), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(rng.normal(size=(n, rows, 1)), dtype=torch.float64, requires_grad=True)
    got = stacking._TransposedProduct.apply(x, w, bias, out)
    want = torch.stack([torch.nn.functional.linear(x[j], w[j, :out], bias[j, :out, 0]) for j in range(n)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grad_w, grad_b = torch.autograd.grad(got.square().sum(), (w, bias))
    assert grad_w[:, out:].abs().max() == 0 and grad_b[:, out:].abs().max() == 0
    assert grad_w[:, :out].abs().max() > 0
    assert torch.autograd.gradcheck(lambda a, c, d: stacking._TransposedProduct.apply(a, c, d, out),
                                    (x, w, bias))
    assert torch.autograd.gradcheck(lambda a, c: stacking._TransposedProduct.apply(a, c, None, out), (x, w))
