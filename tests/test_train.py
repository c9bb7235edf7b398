"""Tests of the trainers (skdtutor.train): learning, reproducibility, checkpoints, the cached
teacher, stacked sweeps against sequential runs, label masks, and (marked ``cuda``) the GPU.

Everything runs on the embedded ``digits`` dataset with tiny models and a few epochs, on the
CPU unless a test is marked ``cuda``. No timing assertions: speed is measured by
``benchmarks/bench_train.py``.
"""
from __future__ import annotations

import dataclasses
import math


import pytest
import torch
from torch import nn

from skdtutor import data, losses, models, stacked_adam, stacking, steps, sweep, train
from skdtutor.losses import CE, KD, SKD, DiceKD
from scaled_loss import registered  # (tests/scaled_loss.py)

COLUMNS = ["epoch", "train_loss", "train_acc", "val_acc", "test_acc", "test_nll", "test_ece",
           "test_max_prob", "test_logit_norm", "test_entropy", "test_agreement"]
SWEEP_TOL = 1e-5  # float32 on the CPU


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture(scope="module")
def teacher(digits):
    """A small CNN teacher trained once for the module, and its history."""
    model = models.build_model("cnn", digits, width=8, seed=0)
    history = train.train_teacher(model, digits, 8, lr=3e-3, batch_size=64, seed=0,
                                  device="cpu", progress=False, eval_every=8)
    return model, history


@pytest.fixture(scope="module")
def logits(digits, teacher):
    return train.compute_teacher_logits(teacher[0], digits, device="cpu")


def mlp(digits, seed=None):
    return models.build_model("mlp", digits, width=16, depth=1, seed=seed)


def tiny_cnn(digits, seed=None):
    return models.build_model("cnn", digits, width=4, seed=seed)


def max_gap(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def rows_equal(r1, r2):
    if len(r1) != len(r2):
        return False
    for a, b in zip(r1, r2):
        if a.keys() != b.keys():
            return False
        for k in a:
            if not (a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))):
                return False
    return True


def distill_run(digits, logits, loss, seed=0, epochs=3, make=mlp, **kw):
    torch.manual_seed(seed)
    student = make(digits)
    history = train.distill(student, logits, digits, loss, epochs, lr=3e-3, batch_size=64, seed=seed,
                            device="cpu", progress=False, eval_every=epochs, **kw)
    return student, history


# ------------------------------------------------------------------------------ teacher
def test_train_teacher_learns_digits(teacher):
    _, history = teacher
    df = history.df
    assert list(df["epoch"]) == list(range(1, 9))
    assert df["test_acc"].iloc[-1] > 0.8  # chance is 0.1
    assert df["train_loss"].iloc[-1] < df["train_loss"].iloc[0]
    assert "test_agreement" not in df  # no teacher of the teacher


def test_same_seed_same_weights_and_other_seed_differs(digits):
    def run(init_seed, batch_seed):
        model = mlp(digits, seed=init_seed)
        h = train.train_teacher(model, digits, 2, batch_size=64, seed=batch_seed, device="cpu",
                                progress=False)
        return model, h

    a, ha = run(0, 0)
    b, hb = run(0, 0)
    assert same_weights(a, b)
    assert rows_equal(ha.rows, hb.rows)
    c, _ = run(1, 1)
    assert not same_weights(a, c)
    d, _ = run(0, 1)  # same initial weights, other batch order
    assert not same_weights(a, d)


def test_eval_every_evaluates_the_chosen_epochs_and_the_last(digits):
    h = train.train_teacher(mlp(digits, seed=0), digits, 5, batch_size=64, device="cpu",
                            progress=False, eval_every=2)
    df = h.df
    evaluated = df["epoch"][df["test_acc"].notna()].tolist()
    assert evaluated == [2, 4, 5]
    assert df["train_loss"].notna().all() and df["train_acc"].between(0, 1).all()


def test_threads_argument_is_restored(digits):
    before = torch.get_num_threads()
    train.train_teacher(mlp(digits, seed=0), digits, 1, device="cpu", progress=False,
                        threads=max(1, before % 2 + 1))
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        train.train_teacher(mlp(digits, seed=0), digits, 1, device="cpu", progress=False, threads=0)


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("loss", [None, KD(T=4.0)], ids=["teacher", "distill"])
def test_checkpoint_resume_equals_uninterrupted_run(digits, logits, tmp_path, loss):
    def run(model, **kw):
        common = dict(lr=3e-3, batch_size=64, seed=3, device="cpu", progress=False)
        if loss is None:
            return train.train_teacher(model, digits, 4, **common, **kw)
        return train.distill(model, logits, digits, loss, 4, **common, **kw)

    full_model = mlp(digits, seed=3)
    full = run(full_model)

    path = tmp_path / "run.pt"
    first = run(mlp(digits, seed=3), checkpoint=path, stop_after=2)
    assert [r["epoch"] for r in first.rows] == [1, 2]
    assert path.exists()
    resumed_model = mlp(digits, seed=99)  # any initial weights: the checkpoint replaces them
    resumed = run(resumed_model, checkpoint=path, resume=True)
    assert same_weights(full_model, resumed_model)
    assert rows_equal(full.rows, resumed.rows)


def test_resume_with_other_settings_raises(digits, tmp_path):
    path = tmp_path / "run.pt"
    train.train_teacher(mlp(digits, seed=0), digits, 2, lr=1e-3, device="cpu", progress=False,
                        checkpoint=path, stop_after=1)
    with pytest.raises(ValueError, match="other settings"):
        train.train_teacher(mlp(digits, seed=0), digits, 2, lr=2e-3, device="cpu", progress=False,
                            checkpoint=path, resume=True)


# ------------------------------------------------------------------------------ distill
@pytest.mark.parametrize("loss", [KD(T=4.0, gamma=0.9), SKD(T=2.0, multiplier=2.0),
                                  DiceKD(T=3.0, gamma=0.5), CE()], ids=lambda l: l.name)
def test_distill_runs_and_history_has_documented_columns(digits, logits, loss):
    student, h = distill_run(digits, logits, loss, epochs=2)
    df = h.df
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 and df["train_loss"].map(math.isfinite).all()
    assert 0 <= df["test_acc"].iloc[-1] <= 1 and 0 <= df["test_agreement"].iloc[-1] <= 1
    assert h.model is student and not student.training
    assert h.final["method"] == loss.name and h.final["epochs"] == 2
    for k, v in loss.hparams().items():
        assert h.final[k] == v


def test_distill_without_teacher_for_ce_and_errors(digits, logits):
    torch.manual_seed(0)
    h = train.distill(mlp(digits), None, digits, CE(), 1, device="cpu", progress=False)
    assert "test_agreement" not in h.df and set(COLUMNS[:-1]) <= set(h.df.columns)
    with pytest.raises(ValueError, match="needs a teacher"):
        train.distill(mlp(digits), None, digits, KD(), 1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="loss object"):
        train.distill(mlp(digits), logits, digits, "kd", 1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train.distill(mlp(digits), logits, digits, KD(), 0, device="cpu", progress=False)


def test_distill_from_module_equals_distill_from_cached_logits(digits, teacher, logits):
    a, ha = distill_run(digits, logits, KD(T=4.0))
    b, hb = distill_run(digits, teacher[0], KD(T=4.0))
    assert same_weights(a, b)
    assert rows_equal(ha.rows, hb.rows)


class CountingForward(nn.Module):
    """Wraps a model and counts its forward calls."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


@pytest.mark.parametrize("epochs,batch_size", [(1, 256), (3, 16)])
def test_teacher_logits_are_computed_once(digits, teacher, epochs, batch_size):
    counted = CountingForward(teacher[0])
    torch.manual_seed(0)
    train.distill(mlp(digits), counted, digits, KD(), epochs, batch_size=batch_size, device="cpu",
                  progress=False)
    # one pass per split (each split fits in one 2048-row chunk), whatever the batches
    assert counted.calls == 3
    assert len(digits.y_train) // batch_size > 3  # far fewer calls than batches


def test_augmentation_shows_the_teacher_every_batch(digits, teacher):
    counted = CountingForward(teacher[0])

    def jitter(x, generator):
        return x + 0.01 * torch.randn(x.shape, generator=generator)

    torch.manual_seed(0)
    train.distill(mlp(digits), counted, digits, KD(), 1, batch_size=128, device="cpu", progress=False,
                  augment=jitter)
    batches = math.ceil(len(digits.y_train) / 128)
    assert counted.calls == 3 + batches


def test_per_step_gathering_gives_the_same_run(digits, logits, monkeypatch):
    a, ha = distill_run(digits, logits, SKD(T=2.0))
    monkeypatch.setattr(steps, "GATHER_BYTES", 0)  # index every batch instead of every epoch
    b, hb = distill_run(digits, logits, SKD(T=2.0))
    assert same_weights(a, b)
    assert rows_equal(ha.rows, hb.rows)


# --------------------------------------------------------------------------- label masks
def test_labelled_mask_all_true_equals_no_mask(digits, logits):
    n = len(digits.y_train)
    a, ha = distill_run(digits, logits, KD(T=4.0))
    b, hb = distill_run(digits, logits, KD(T=4.0), labelled=torch.ones(n, dtype=torch.bool))
    assert same_weights(a, b)
    assert rows_equal(ha.rows, hb.rows)
    half = torch.arange(n) % 2 == 0
    c, _ = distill_run(digits, logits, KD(T=4.0), labelled=half)
    assert not same_weights(a, c)


def test_labelled_mask_is_validated(digits, logits):
    n = len(digits.y_train)
    for bad in (torch.ones(n), torch.ones(n - 1, dtype=torch.bool)):
        with pytest.raises(ValueError, match="boolean mask"):
            distill_run(digits, logits, KD(), labelled=bad)


# -------------------------------------------------------------------------------- sweeps
MIXED = [sweep.SweepMember(KD(T=1.0), 0), sweep.SweepMember(KD(T=4.0), 0),
         sweep.SweepMember(KD(T=4.0), 1), sweep.SweepMember(KD(T=8.0, gamma=0.5), 1),
         sweep.SweepMember(SKD(T=4.0, multiplier=1.0), 2),
         sweep.SweepMember(SKD(T=4.0, multiplier=3.0), 0),
         sweep.SweepMember(DiceKD(T=2.0), 0), sweep.SweepMember(CE(), 3)]


def check_sweep(digits, logits, members, make, epochs=3, **kw):
    histories = sweep.distill_sweep(lambda: make(digits), logits, digits, members, epochs, lr=3e-3,
                                    batch_size=64, device="cpu", progress=False,
                                    eval_every=epochs, **kw)
    assert len(histories) == len(members)
    for m, h in zip(members, histories):
        student, ref = distill_run(digits, logits, m.loss, seed=m.seed, epochs=epochs, make=make, **kw)
        assert h.config == ref.config
        assert max_gap(student, h.model) < SWEEP_TOL, m
        assert [r["epoch"] for r in h.rows] == list(range(1, epochs + 1))
        for r, q in zip(h.rows, ref.rows):
            assert r.keys() == q.keys()
            assert r["train_loss"] == pytest.approx(q["train_loss"], abs=SWEEP_TOL)
            assert r["train_acc"] == pytest.approx(q["train_acc"], abs=2 / len(digits.y_train))
        assert h.rows[-1]["test_acc"] == pytest.approx(ref.rows[-1]["test_acc"],
                                                       abs=2 / len(digits.y_test))
    return histories


def test_sweep_equals_sequential_runs_mlp(digits, logits):
    check_sweep(digits, logits, MIXED, mlp)


def test_sweep_equals_sequential_runs_cnn(digits, logits):
    check_sweep(digits, logits, MIXED[::2] + [sweep.SweepMember(KD(T=2.0), 5)], tiny_cnn, epochs=2)


@pytest.mark.parametrize("make", [mlp, tiny_cnn], ids=["mlp", "cnn"])
def test_sweep_arithmetic_is_that_of_the_sequential_runs_in_float64(digits, logits, make):
    """In float64 the sweep matches to float rounding (1e-12): the float32 tolerance above is rounding only.

    (In float32, long runs of some seeds amplify last-bit differences, as any change of
    summation order does, e.g. another Adam implementation; the float64 run shows that
    the formulas are the same.)"""
    d64 = dataclasses.replace(digits, x_train=digits.x_train.double(), x_val=digits.x_val.double(),
                              x_test=digits.x_test.double())
    l64 = train.TeacherLogits(logits.train.double(), logits.val.double(), logits.test.double())

    def make64(d):
        return make(d).double()

    members = [sweep.SweepMember(KD(T=1.0), 0), sweep.SweepMember(SKD(T=2.0), 0),
               sweep.SweepMember(DiceKD(T=4.0), 1), sweep.SweepMember(CE(), 2)]
    histories = sweep.distill_sweep(lambda: make64(d64), l64, d64, members, 2, lr=3e-3,
                                    batch_size=64, device="cpu", progress=False, eval_every=2)
    for m, h in zip(members, histories):
        student, _ = distill_run(d64, l64, m.loss, seed=m.seed, epochs=2, make=make64)
        assert max_gap(student, h.model) < 1e-12, m


def without_private_adam(monkeypatch, how):
    """PyTorch as it is before 2.4 on the CPU: ``Adam(fused=True)`` refused, and the private
    fused kernel either absent (``how="absent"``) or present without a CPU implementation."""
    public_adam = torch.optim.Adam

    def adam(params, *args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be CUDA, floating point Tensor")
        return public_adam(params, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    if how == "absent":
        monkeypatch.delattr(torch, "_fused_adam_")
        monkeypatch.delattr(torch, "_foreach_add_")
    else:
        def unimplemented(*args, **kwargs):
            raise NotImplementedError("Could not run 'aten::_fused_adam_' with arguments from the 'CPU' backend")

        monkeypatch.setattr(torch, "_fused_adam_", unimplemented)
    monkeypatch.setattr(stacked_adam, "_FUSED_KERNEL", {})  # probe again under the patch


@pytest.mark.parametrize("how", ["absent", "unimplemented"])
def test_without_the_private_fused_adam_the_public_adam_gives_the_same_numbers(digits, logits,
                                                                               monkeypatch, how):
    """Single and stacked runs fall back to the public ``torch.optim.Adam`` and reproduce the
    fused runs to float rounding (float64, so rounding is ~1e-16 per step)."""
    d64 = dataclasses.replace(digits, x_train=digits.x_train.double(), x_val=digits.x_val.double(),
                              x_test=digits.x_test.double())
    l64 = train.TeacherLogits(logits.train.double(), logits.val.double(), logits.test.double())
    members = [sweep.SweepMember(KD(T=4.0), 0), sweep.SweepMember(SKD(T=2.0), 1),
               sweep.SweepMember(CE(), 2)]

    def runs():
        single = [distill_run(d64, l64, m.loss, seed=m.seed, epochs=2, make=lambda d: mlp(d).double())
                  for m in members]
        stacked = sweep.distill_sweep(lambda: mlp(d64).double(), l64, d64, members, 2, lr=3e-3,
                                      batch_size=64, device="cpu", progress=False, eval_every=2)
        probe = stacked_adam.StackedAdam([torch.zeros(2, dtype=torch.float64)], 1e-3, 0.0, torch.device("cpu"))
        return single, stacked, probe.optimizer

    fast_single, fast_stacked, _ = runs()
    with monkeypatch.context() as m:
        without_private_adam(m, how)
        slow_single, slow_stacked, fallback = runs()
    assert fallback is not None and not fallback.defaults.get("fused")  # the public Adam did the steps
    for (fs, fh), (ss, sh), fst, sst in zip(fast_single, slow_single, fast_stacked, slow_stacked):
        assert max_gap(fs, ss) < 1e-12 and max_gap(fst.model, sst.model) < 1e-12
        assert max_gap(ss, sst.model) < 1e-12  # and the fallback sweep still equals its sequential run
        assert [r["train_loss"] for r in fh.rows] == pytest.approx([r["train_loss"] for r in sh.rows],
                                                                   abs=1e-12)


def test_sweep_with_distinct_seeds_and_a_label_mask(digits, logits):
    members = [sweep.SweepMember(KD(T=float(t)), seed) for seed, t in enumerate((1, 2, 4))]
    half = torch.arange(len(digits.y_train)) % 3 != 0
    check_sweep(digits, logits, members, mlp, epochs=2, labelled=half)


def test_sweep_uses_explicit_batched_layers_for_mlp_and_cnn(digits):
    for make in (mlp, tiny_cnn):
        students = [make(digits, seed=s) for s in range(3)]
        params = {k: torch.stack([dict(s.named_parameters())[k].detach() for s in students])
                  for k, _ in students[0].named_parameters()}
        *_, kind = stacking.stacked_forward(students, params, {}, digits.x_train[:4])
        assert kind == "explicit"


class ScaledMLP(nn.Module):
    """An architecture the explicit stacking does not know (a bare parameter): vmap path."""

    def __init__(self, digits):
        super().__init__()
        self.body = mlp(digits)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.body(x) * self.scale


def test_sweep_falls_back_to_vmap_for_other_architectures(digits, logits):
    students = [ScaledMLP(digits) for _ in range(2)]
    params = {k: torch.stack([dict(s.named_parameters())[k].detach() for s in students])
              for k, _ in students[0].named_parameters()}
    *_, kind = stacking.stacked_forward(students, params, {}, digits.x_train[:4])
    assert kind == "vmap"
    check_sweep(digits, logits, MIXED[:3], ScaledMLP, epochs=2)


@pytest.mark.parametrize("layer", [nn.BatchNorm1d(16), nn.Dropout(0.1)], ids=["batchnorm", "dropout"])
def test_sweep_refuses_batchnorm_and_dropout(digits, logits, layer):
    def make():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), layer, nn.ReLU(), nn.Linear(16, 10))

    assert not sweep.stackable(make)
    with pytest.raises(ValueError, match=type(layer).__name__):
        sweep.distill_sweep(make, logits, digits, MIXED[:2], 1, device="cpu", progress=False)
    assert sweep.stackable(lambda: mlp(digits))


def test_sweep_argument_errors(digits, logits):
    with pytest.raises(ValueError, match="empty"):
        sweep.distill_sweep(lambda: mlp(digits), logits, digits, [], 1, device="cpu")
    with pytest.raises(ValueError, match="SweepMember"):
        sweep.distill_sweep(lambda: mlp(digits), logits, digits, [KD()], 1, device="cpu")
    with pytest.raises(ValueError, match="teacher"):
        sweep.distill_sweep(lambda: mlp(digits), None, digits, MIXED[:1], 1, device="cpu")


# ------------------------------------------------------------------------------------ GPU
@pytest.mark.cuda
def test_cuda_trainers_and_losses(digits):
    teacher = models.build_model("cnn", digits, width=8, seed=0)
    h = train.train_teacher(teacher, digits, 2, device="cuda", progress=False)
    assert next(teacher.parameters()).is_cuda and h.df["test_acc"].notna().all()
    logits = train.compute_teacher_logits(teacher, digits, device="cuda")
    assert logits.train.device.type == "cpu"  # cached on the host, moved per run
    for loss in (KD(T=4.0), SKD(T=2.0), DiceKD(T=2.0), CE()):
        torch.manual_seed(0)
        student = mlp(digits)
        hs = train.distill(student, teacher, digits, loss, 2, device="cuda", progress=False,
                           labelled=torch.arange(len(digits.y_train)) % 2 == 0)
        assert list(hs.df.columns) == COLUMNS and math.isfinite(hs.final["train_loss"])
    s = torch.randn(32, 10, generator=torch.Generator().manual_seed(1))
    t = torch.randn(32, 10, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(3))
    for fn in (losses.kd_loss, losses.skd_loss, losses.dice_loss):
        assert fn(s.cuda(), t.cuda(), y.cuda()).item() == pytest.approx(fn(s, t, y).item(), rel=1e-5)


@pytest.mark.cuda
def test_cuda_sweep_equals_sequential_runs(digits):
    teacher = models.build_model("cnn", digits, width=8, seed=0)
    logits = train.compute_teacher_logits(teacher, digits, device="cuda")
    members = MIXED[:6]
    hs = sweep.distill_sweep(lambda: mlp(digits), logits, digits, members, 2, batch_size=64,
                             device="cuda", progress=False)
    for m, h in zip(members, hs):
        torch.manual_seed(m.seed)
        student = mlp(digits)
        train.distill(student, logits, digits, m.loss, 2, batch_size=64, seed=m.seed, device="cuda",
                      progress=False)
        assert max_gap(student, h.model) < 1e-4, m


# ------------------------------------------------------------------------ speed helpers
@pytest.mark.parametrize("classes", [2, 10, 15, 16, 100])
def test_fast_softmax_helpers_match_torch(classes):
    z = torch.randn(3, 37, classes, dtype=torch.float64, requires_grad=True)
    for fast, ref in ((losses.functional._log_softmax, torch.log_softmax),
                      (losses.functional._softmax, torch.softmax)):
        got, want = fast(z), ref(z, dim=-1)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
        g1, = torch.autograd.grad(got.sin().sum(), z)
        g2, = torch.autograd.grad(want.sin().sum(), z)
        torch.testing.assert_close(g1, g2)


# --------------------------------------------------------------------------- divergence
@pytest.fixture
def scaled_ce():
    """A loss whose ``scale`` can make one member diverge (inf), registered for this test only."""
    with registered() as loss:
        yield loss


def test_a_diverged_run_stops_with_a_clear_error(digits, scaled_ce):
    with pytest.raises(train.DivergedError, match=r"scaled-ce-test \(scale=inf\), seed 3, epoch 1: "
                                                  r"non-finite loss.*lower the learning rate"):
        train.distill(mlp(digits, seed=3), None, digits, scaled_ce(scale=float("inf")), 3, seed=3,
                      device="cpu", progress=False)


def test_a_diverged_checkpointed_run_keeps_its_last_good_checkpoint(digits, tmp_path):
    path = tmp_path / "run.pt"
    model = mlp(digits, seed=0)
    train.train_teacher(model, digits, 3, device="cpu", progress=False, checkpoint=path, stop_after=1)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))  # a weight gone bad: caught after the epoch
    with pytest.raises(train.DivergedError, match="epoch 1"):  # never saved as a checkpoint
        train.train_teacher(model, digits, 3, device="cpu", progress=False, checkpoint=path)
    from skdtutor import cache
    assert cache.read(path)["epoch"] == 1


def test_a_diverged_sweep_member_is_marked_and_the_others_are_unaffected(digits, scaled_ce):
    members = [sweep.SweepMember(scaled_ce(1.0), 0), sweep.SweepMember(scaled_ce(float("inf")), 0),
               sweep.SweepMember(scaled_ce(1.0), 1)]
    with pytest.warns(RuntimeWarning, match=r"scale=inf\), seed 0, epoch 1"):
        hs = sweep.distill_sweep(lambda: mlp(digits), None, digits, members, 3, lr=3e-3,
                                 batch_size=64, device="cpu", progress=False)
    bad = hs[1]
    assert bad.diverged_epoch == 1 and len(bad.rows) == 1 and bad.final["diverged"] is True
    assert math.isnan(bad.final["test_acc"]) and math.isnan(bad.final["val_acc"])
    for i in (0, 2):  # the same numbers as the member's own run
        alone = train.distill(mlp(digits, seed=members[i].seed), None, digits, members[i].loss, 3,
                              lr=3e-3, batch_size=64, seed=members[i].seed, device="cpu", progress=False)
        assert hs[i].diverged_epoch is None and "diverged" not in hs[i].final
        assert max_gap(hs[i].model, alone.model) < 1e-5
        assert hs[i].final["test_acc"] == pytest.approx(alone.final["test_acc"], abs=1e-9)


# ------------------------------------------------------------------ checkpoint fingerprints
def test_resume_against_another_teacher_or_data_is_refused(digits, logits, tmp_path):
    path = tmp_path / "run.pt"

    def run(teacher, bundle, **kw):
        return train.distill(mlp(bundle, seed=0), teacher, bundle, KD(T=4.0), 2, device="cpu",
                             progress=False, checkpoint=path, **kw)

    run(logits, digits, stop_after=1)
    other = train.TeacherLogits(logits.train.flip(-1), logits.val.flip(-1), logits.test.flip(-1))
    with pytest.raises(ValueError, match=r"run\.pt.*another teacher.*resume=False"):
        run(other, digits, resume=True)
    reshuffled = data.load("digits", seed=1)  # other split seed: other samples, same sizes
    relabelled = train.TeacherLogits(*(torch.zeros(len(getattr(reshuffled, f"y_{s}")), 10)
                                       for s in ("train", "val", "test")))
    with pytest.raises(ValueError, match=r"run\.pt.*another data"):
        run(relabelled, reshuffled, resume=True)
    assert len(run(logits, digits, resume=True).rows) == 2  # the same teacher and data resume
