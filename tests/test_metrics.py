"""Tests of skdtutor.metrics against straightforward NumPy loops."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from reference import softmax as np_softmax  # independent NumPy reference
from skdtutor import metrics


def np_ece_loop(logits, labels, n_bins=15):
    """ECE with equal-width bins (lo, hi], written as a plain loop over bins and samples."""
    probs = np_softmax(logits)
    n = len(labels)
    total = 0.0
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        members = [i for i in range(n) if lo < probs[i].max() <= hi]
        if not members:
            continue
        conf = np.mean([probs[i].max() for i in members])
        acc = np.mean([float(np.argmax(probs[i]) == labels[i]) for i in members])
        total += len(members) / n * abs(acc - conf)
    return total


@pytest.fixture
def batch(rng):
    n, C = 300, 5
    logits = rng.normal(size=(n, C)) * 2.0
    labels = rng.integers(0, C, size=n)
    # make the model partly right so that bins differ in accuracy
    right = rng.random(n) < 0.6
    logits[right, labels[right]] += 2.0
    conf = np_softmax(logits).max(-1)
    # precondition: no confidence sits within float32 noise of a bin edge
    edges = np.arange(16) / 15
    assert np.abs(conf[:, None] - edges[None, :]).min() > 1e-5
    return logits, labels


def _t(a, dtype=torch.float32):
    return torch.tensor(np.asarray(a), dtype=dtype)


def test_accuracy(batch):
    logits, labels = batch
    expected = np.mean(np.argmax(logits, -1) == labels)
    assert metrics.accuracy(_t(logits), torch.tensor(labels)) == pytest.approx(expected, abs=1e-7)
    assert metrics.accuracy(_t([[0.0, 1.0], [2.0, 1.0]]), torch.tensor([1, 1])) == 0.5


def test_nll(batch):
    logits, labels = batch
    p = np_softmax(logits)
    expected = -np.mean(np.log(p[np.arange(len(labels)), labels]))
    assert metrics.nll(_t(logits), torch.tensor(labels)) == pytest.approx(expected, rel=1e-5)
    # uniform predictions over C classes: log C
    assert metrics.nll(torch.zeros(4, 7), torch.tensor([0, 3, 6, 2])) == pytest.approx(math.log(7), rel=1e-6)


@pytest.mark.parametrize("n_bins", [15, 10, 4])
def test_ece_matches_numpy_loop(batch, n_bins):
    logits, labels = batch
    if n_bins != 15:
        conf = np_softmax(logits).max(-1)
        edges = np.arange(n_bins + 1) / n_bins
        assert np.abs(conf[:, None] - edges[None, :]).min() > 1e-5
    got = metrics.ece(_t(logits), torch.tensor(labels), n_bins=n_bins)
    assert got == pytest.approx(np_ece_loop(logits, labels, n_bins), abs=1e-6)
    assert 0.0 <= got <= 1.0


def test_ece_default_uses_15_bins(batch):
    logits, labels = batch
    got = metrics.ece(_t(logits), torch.tensor(labels))
    assert got == pytest.approx(np_ece_loop(logits, labels, 15), abs=1e-6)


def test_reliability_bins_match_numpy_loop(batch):
    logits, labels = batch
    n_bins = 15
    table = metrics.reliability_bins(_t(logits), torch.tensor(labels), n_bins)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["lower", "upper", "count", "confidence", "accuracy"]
    assert len(table) == n_bins
    assert table["count"].sum() == len(labels)
    np.testing.assert_allclose(table["lower"], np.arange(n_bins) / n_bins, atol=1e-12)
    np.testing.assert_allclose(table["upper"], np.arange(1, n_bins + 1) / n_bins, atol=1e-12)
    probs = np_softmax(logits)
    conf, pred = probs.max(-1), probs.argmax(-1)
    for k in range(n_bins):
        members = (conf > k / n_bins) & (conf <= (k + 1) / n_bins)
        assert table["count"].iloc[k] == members.sum()
        if members.any():
            assert table["confidence"].iloc[k] == pytest.approx(conf[members].mean(), abs=1e-6)
            assert table["accuracy"].iloc[k] == pytest.approx((pred == labels)[members].mean(), abs=1e-12)
        else:
            assert np.isnan(table["confidence"].iloc[k]) and np.isnan(table["accuracy"].iloc[k])


def test_reliability_bins_are_right_closed():
    # confidences exactly on edges: 0.25 (4 equal logits), 0.5 (2 equal logits), 1.0
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1e4, -1e4], [1e4, 0.0, 0.0, 0.0]])
    probs = torch.softmax(logits, -1).max(-1).values
    assert probs.tolist() == [0.25, 0.5, 1.0]  # precondition: exact edge values
    table = metrics.reliability_bins(logits, torch.tensor([0, 0, 0]), n_bins=4)
    # bins (0, .25], (.25, .5], (.5, .75], (.75, 1]
    assert table["count"].tolist() == [1, 1, 0, 1]


def test_bad_n_bins_raises(batch):
    logits, labels = batch
    with pytest.raises(ValueError, match="n_bins"):
        metrics.reliability_bins(_t(logits), torch.tensor(labels), n_bins=0)


def test_ece_perfectly_calibrated_toy_is_zero():
    # 10 samples at confidence 0.9 with 9 right, 10 at 0.7 with 7 right (both off bin edges)
    rows, labels = [], []
    for conf, n_right in ((0.9, 9), (0.7, 7)):
        for i in range(10):
            rows.append([math.log(conf), math.log(1 - conf)])
            labels.append(0 if i < n_right else 1)
    got = metrics.ece(torch.tensor(rows, dtype=torch.float64), torch.tensor(labels))
    assert got == pytest.approx(0.0, abs=1e-6)


def test_ece_overconfident_toy():
    # every sample at confidence 0.9 but only half right: ECE = 0.4
    rows = [[math.log(0.9), math.log(0.1)]] * 10
    labels = [0] * 5 + [1] * 5
    got = metrics.ece(torch.tensor(rows), torch.tensor(labels))
    assert got == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("T", [0.5, 1.0, 3.0])
def test_entropy(batch, T):
    logits, _ = batch
    p = np_softmax(logits / T)
    expected = -np.mean((p * np.log(p)).sum(-1))
    assert metrics.entropy(_t(logits), T=T) == pytest.approx(expected, rel=1e-5)


def test_entropy_extremes():
    assert metrics.entropy(torch.zeros(3, 6)) == pytest.approx(math.log(6), rel=1e-6)
    assert metrics.entropy(torch.tensor([[1e4, 0.0, 0.0]])) == pytest.approx(0.0, abs=1e-6)


def test_mean_max_prob(batch):
    logits, _ = batch
    expected = np_softmax(logits).max(-1).mean()
    assert metrics.mean_max_prob(_t(logits)) == pytest.approx(expected, rel=1e-6)
    assert metrics.mean_max_prob(torch.zeros(2, 4)) == pytest.approx(0.25, rel=1e-6)


def test_logit_norm(batch):
    logits, _ = batch
    expected = np.mean(np.sqrt((logits ** 2).sum(-1)))
    assert metrics.logit_norm(_t(logits)) == pytest.approx(expected, rel=1e-6)
    assert metrics.logit_norm(torch.tensor([[3.0, 4.0], [0.0, 0.0]])) == pytest.approx(2.5)


def test_agreement(rng):
    s = rng.normal(size=(50, 4))
    t = rng.normal(size=(50, 4))
    expected = np.mean(s.argmax(-1) == t.argmax(-1))
    assert metrics.agreement(_t(s), _t(t)) == pytest.approx(expected, abs=1e-7)
    assert metrics.agreement(_t(s), _t(s * 2 + 1)) == 1.0


def test_summarize_collects_all_metrics(batch):
    logits, labels = batch
    x, y = _t(logits), torch.tensor(labels)
    out = metrics.summarize(x, y, teacher_logits=x, prefix="val_")
    assert out["val_acc"] == pytest.approx(np.mean(np.argmax(logits, -1) == labels), abs=1e-7)
    assert out["val_ece"] == pytest.approx(np_ece_loop(logits, labels), abs=1e-6)
    assert out["val_agreement"] == 1.0
    assert set(out) == {"val_acc", "val_nll", "val_ece", "val_max_prob", "val_logit_norm",
                        "val_entropy", "val_agreement"}
    assert "test_agreement" not in metrics.summarize(x, y)


@pytest.mark.parametrize("teacher", ["none", "one", "per member"])
def test_summarize_members_is_each_metric_member_by_member(teacher):
    """The stacked form against the single-model metric functions (each tested above against
    NumPy), ties included: integer-valued logits."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randint(-3, 4, (4, 50, 6), generator=g).float() * 0.7
    logits[1] = torch.randn(50, 6, generator=g) * 4  # one member with a spread of confidences
    labels = torch.randint(0, 6, (50,), generator=g)
    teachers = [torch.randn(50, 6, generator=g) for _ in range(4)]
    own = {"none": None, "one": teachers[0], "per member": teachers}[teacher]
    got = metrics.summarize_members(logits, labels, own)
    for j, row in enumerate(got):
        z = logits[j]
        want = {"test_acc": metrics.accuracy(z, labels), "test_nll": metrics.nll(z, labels),
                "test_ece": metrics.ece(z, labels), "test_max_prob": metrics.mean_max_prob(z),
                "test_logit_norm": metrics.logit_norm(z), "test_entropy": metrics.entropy(z)}
        if own is not None:
            want["test_agreement"] = metrics.agreement(z, own if isinstance(own, torch.Tensor) else own[j])
        assert row.keys() == want.keys()
        for k in want:
            assert row[k] == pytest.approx(want[k], rel=1e-6, abs=1e-7), (j, k)
    assert metrics.summarize(logits[2], labels, None) == metrics.summarize_members(logits, labels)[2]
