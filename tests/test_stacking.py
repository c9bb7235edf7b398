"""Tests of the stacking engine's fast paths (skdtutor.stacking, skdtutor.sweep): the epoch's
inputs gathered per member, per seed or per batch give the same run; a ReLU works in place
only where nothing else reads its input; StackedAdam is torch's Adam, member by member; a
member's numbers do not depend on which other members share its stack.

Each compares against a reference computed another way (the members' own modules, torch's
own optimizer, the per-batch indexing path). No timing assertions: speed is measured by
``benchmarks/bench_sweep.py``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from skdtutor import data, models, stacking, steps, sweep
from skdtutor.losses import CE, KD, SKD, DiceKD


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _stacked(students):
    params = {k: torch.stack([dict(s.named_parameters())[k].detach() for s in students])
              .requires_grad_() for k, _ in students[0].named_parameters()}
    return params


def test_gathering_per_member_per_seed_or_per_batch_gives_the_same_sweep(digits, monkeypatch):
    """One kind of loss (one group), two seeds shared by three temperatures each."""
    members = [sweep.SweepMember(KD(T=t), seed) for seed in (0, 1) for t in (1.0, 4.0, 8.0)]
    x_bytes = digits.x_train.element_size() * digits.x_train.numel()

    def run(limit):
        monkeypatch.setattr(steps, "GATHER_BYTES", limit)
        monkeypatch.setattr(sweep, "MEMBER_GATHER_BYTES", limit if limit > 2 * x_bytes else 0)
        return sweep.distill_sweep(lambda: models.build_model("mlp", digits, width=16, depth=1),
                                   _teacher(digits), digits, members, 2,
                                   lr=3e-3, batch_size=64, device="cpu", progress=False)

    per_batch = run(0)
    for limit in (2 * x_bytes, len(members) * x_bytes):  # per seed, then per member
        for a, b in zip(per_batch, run(limit)):
            for k, v in a.model.state_dict().items():
                assert torch.allclose(v, b.model.state_dict()[k], rtol=0, atol=1e-6), k
            assert [r["train_acc"] for r in a.rows] == [r["train_acc"] for r in b.rows]
            assert [r["train_loss"] for r in a.rows] == pytest.approx([r["train_loss"] for r in b.rows],
                                                                      abs=1e-6)


def test_a_member_trains_bit_for_bit_the_same_whatever_shares_its_stack(digits):
    """Two CE students alone, then inside a stack of other losses, seeds and positions: the same
    weights to the last bit. (A student's cached numbers must not depend on the plan that
    trained it; this holds when every member's slice of every tensor has the same alignment,
    which the zero rows of a small head ensure, see stacking._StackedLinear.)"""
    def run(members):
        return sweep.distill_sweep(lambda: models.build_model("mlp", digits, width=32, depth=1),
                                   _teacher(digits), digits, members, 2, lr=3e-3, batch_size=64,
                                   device="cpu", progress=False)

    alone = run([sweep.SweepMember(CE(), 0), sweep.SweepMember(CE(), 1)])
    mixed = run([sweep.SweepMember(KD(T=4.0), 0), sweep.SweepMember(SKD(T=2.0), 1),
                 sweep.SweepMember(CE(), 1), sweep.SweepMember(DiceKD(T=2.0), 2),
                 sweep.SweepMember(KD(T=1.0), 2), sweep.SweepMember(CE(), 0)])
    for a, b in ((alone[0], mixed[5]), (alone[1], mixed[2])):
        for k, v in a.model.state_dict().items():
            assert torch.equal(v, b.model.state_dict()[k]), k
        assert a.rows == b.rows


def _teacher(d):
    torch.manual_seed(0)
    return steps.TeacherLogits(*(torch.randn(len(getattr(d, f"y_{s}")), d.num_classes)
                                 for s in ("train", "val", "test")))


def test_relu_in_place_only_right_after_a_stacked_linear(digits):
    """Flatten -> ReLU must not overwrite the caller's input; Linear -> ReLU may work in place."""
    torch.manual_seed(0)
    students = [nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
                for _ in range(3)]
    net = stacking.stacked_forward(students, _stacked(students), {}, digits.x_train[:4])
    assert net.kind == "explicit"
    relus = [m for m in net.forward.modules() if isinstance(m, nn.ReLU)]
    assert [m.inplace for m in relus] == [False, True]
    xs = digits.x_train[:8] - 0.5  # negative entries: an in-place ReLU on the input would show
    inputs = xs.unsqueeze(0).expand(3, *xs.shape).contiguous()
    before = inputs.clone()
    got = net.forward(inputs)
    assert torch.equal(inputs, before)
    want = torch.stack([s(xs) for s in students])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stacked_adam_is_torch_adam_member_by_member():
    torch.manual_seed(0)
    shapes = [(3, 5, 4), (3, 1, 4)]
    stacked = [torch.randn(*s, requires_grad=True) for s in shapes]
    own = [[p[j].detach().clone().requires_grad_() for p in stacked] for j in range(3)]
    opt = stacking.StackedAdam(stacked, 1e-2, 1e-3, torch.device("cpu"))
    refs = [torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3, fused=True) for ps in own]
    for step in range(4):
        targets = [torch.randn(*s) for s in shapes]
        opt.step(sum(((p - t) ** 2).sum() for p, t in zip(stacked, targets)))
        for j, (ps, ref) in enumerate(zip(own, refs)):
            ref.zero_grad()
            sum(((p - t[j]) ** 2).sum() for p, t in zip(ps, targets)).backward()
            ref.step()
    for j, ps in enumerate(own):
        for p, q in zip(stacked, ps):
            assert torch.allclose(p[j].detach(), q.detach(), rtol=0, atol=1e-6)
