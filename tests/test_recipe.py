"""The literature's CIFAR recipe (skdtutor.recipe, skdtutor.recipe_steps, data.flip_crop) on
small fake CIFAR-shaped tensors made here: no download, seconds on a CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from skdtutor import cli_spec, data, recipe as recipe_mod
from skdtutor.__main__ import main
from skdtutor.bundle import DataBundle
from skdtutor.config import ModelSpec
from skdtutor.losses import make_loss
from skdtutor.recipe import RECIPES, RecipeConfig, recipe, run_recipe
from skdtutor.recipe_steps import AMP_MODES, fit, lr_at, train_step


def fake_bundle(n_train=48, n_val=16, n_test=32, size=8, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)

    def split(n):
        return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)

    (xt, yt), (xv, yv), (xs, ys) = split(n_train), split(n_val), split(n_test)
    return DataBundle("fake", xt, yt, xv, yv, xs, ys, [str(c) for c in range(classes)],
                      (3, size, size), classes)


# A recipe small enough for a CPU test: the CIFAR ResNets on 8x8 images.
TINY = dict(teacher=ModelSpec("resnet20"), student=ModelSpec("resnet8x4"), epochs=2, batch_size=16,
            device="cpu")


# ------------------------------------------------------------------ augmentation
def reference_flip_crop(x, seed, padding):
    """flip_crop by hand: the same draws (flips, then dx, then dy), numpy padding and slicing."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=g) < 0.5).numpy()
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=g).numpy()
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=g).numpy()
    out = []
    for i, image in enumerate(x.numpy()):
        image = image[:, :, ::-1] if flip[i] else image
        padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
        out.append(padded[:, dy[i]:dy[i] + h, dx[i]:dx[i] + w])
    return np.stack(out), flip, dx, dy


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_flip_crop_equals_a_hand_written_reference(padding):
    x = torch.randn(16, 3, 6, 7)
    want, *_ = reference_flip_crop(x, seed=5, padding=padding)
    got = data.flip_crop(x, torch.Generator().manual_seed(5), padding=padding)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_flip_crop_pads_with_zeros_and_keeps_a_shifted_window():
    x = torch.ones(64, 2, 8, 8)
    out = data.flip_crop(x, torch.Generator().manual_seed(1), padding=4)
    _, _, dx, dy = reference_flip_crop(x, seed=1, padding=4)
    kept = (8 - np.abs(dy - 4)) * (8 - np.abs(dx - 4))  # the overlap of the window with the image
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(out[:, 0].sum((1, 2)).numpy(), kept)


def test_flip_crop_without_padding_is_each_image_or_its_mirror():
    x = torch.randn(64, 3, 5, 5)
    out = data.flip_crop(x, torch.Generator().manual_seed(2), padding=0)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 10 < int(mirrored.sum()) < 54  # both happen, about half each


def test_flip_crop_refuses_bad_input():
    with pytest.raises(ValueError, match="batch"):
        data.flip_crop(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="padding"):
        data.flip_crop(torch.zeros(2, 3, 8, 8), padding=-1)


# ------------------------------------------------------------------ the recipe's settings
def test_the_cifar100_kd_recipe_is_mdistillers():
    # mdistiller configs/cifar100/kd.yaml: resnet32x4 -> resnet8x4, SGD 0.05, momentum 0.9,
    # weight decay 5e-4, batch 64, 240 epochs, lr x0.1 at 150/180/210; KD T=4, CE 0.1, KD 0.9
    cfg = RECIPES["cifar100-kd"]
    assert (cfg.teacher.name, cfg.student.name, cfg.dataset) == ("resnet32x4", "resnet8x4", "cifar100")
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (0.05, 0.9, 5e-4, 64, 240)
    assert (cfg.milestones, cfg.lr_decay, cfg.padding) == ((150, 180, 210), 0.1, 4)
    kd = make_loss("kd")
    assert (kd.T, 1 - kd.gamma, kd.gamma) == pytest.approx((4.0, 0.1, 0.9))


def mdistiller_lr(epoch_1_based, lr, stages, rate=0.1):
    """mdistiller's engine/utils.adjust_learning_rate, written out."""
    steps = int(np.sum(epoch_1_based > np.asarray(stages)))
    return lr * rate ** steps


@pytest.mark.parametrize("epochs,stages", [(240, (150, 180, 210)), (24, (15, 18, 21)),
                                           (120, (75, 90, 105)), (8, (5, 6, 7))])
def test_milestones_scale_with_epochs_and_the_schedule_is_mdistillers(epochs, stages):
    cfg = recipe("cifar100-kd", epochs=epochs)
    assert cfg.milestones == stages
    for epoch in range(epochs):
        assert lr_at(epoch, cfg) == pytest.approx(mdistiller_lr(epoch + 1, 0.05, stages))


def test_one_epoch_decays_once_after_it():
    assert recipe("cifar100-kd", epochs=1).milestones == (1, 1, 1)
    assert lr_at(0, recipe("cifar100-kd", epochs=1)) == 0.05


@pytest.mark.parametrize("overrides,needle", [
    (dict(epochs=0), "epochs"), (dict(epochs=2.5), "epochs"), (dict(lr=0), "lr"),
    (dict(lr_decay=1.5), "lr_decay"), (dict(momentum=1), "momentum"), (dict(batch_size=0), "batch_size"),
    (dict(methods=("kd", "bogus")), "unknown method"), (dict(amp="fp8"), "amp"),
    (dict(milestone_fractions=(0.8, 0.5)), "increasing"), (dict(device="tpu"), "unknown device"),
    (dict(seed=-1), "seed"), (dict(colour="red"), "unknown recipe setting"),
])
def test_bad_settings_are_a_value_error_naming_them(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        recipe("cifar100-kd", **overrides)


@pytest.fixture
def no_data(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the arguments were checked")

    monkeypatch.setattr(data, "load", refuse)


@pytest.mark.parametrize("name,overrides,needle", [
    ("cifar1000-kd", {}, "unknown recipe 'cifar1000-kd'; choose one of cifar100-kd"),
    ("cifar100-kd", dict(epochs=0), "epochs must be an integer"),
    ("cifar100-kd", dict(methods=("kd@dice",)), "unknown method"),
])
def test_run_recipe_checks_before_loading_anything(no_data, name, overrides, needle):
    with pytest.raises(ValueError, match=needle):
        run_recipe(name, use_cache=False, **overrides)


@pytest.mark.parametrize("argv,needle", [
    (["recipe", "cifar1000-kd"], "invalid choice"),
    (["recipe", "cifar100-kd", "--epochs", "0"], "integer >= 1"),
    (["recipe", "cifar100-kd", "--methods", "kd,nope"], "unknown method"),
    (["recipe", "cifar100-kd", "--seed", "-1", "--no-cache"], "seed must be an integer >= 0"),
    (["recipe", "cifar100-kd", "--device", "foo", "--no-cache"], "unknown device"),
])
def test_cli_mistakes_are_one_line_and_status_2(capsys, no_data, argv, needle):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_cli_names_equal_the_recipe_registry():
    assert cli_spec.RECIPE_NAMES == tuple(recipe_mod.RECIPES)
    assert cli_spec.AMP_MODES == AMP_MODES


# ------------------------------------------------------------------ training
def test_a_kd_step_lowers_the_loss_and_the_teacher_runs_under_inference_mode():
    torch.manual_seed(0)
    shape = fake_bundle(classes=5)
    student = ModelSpec("resnet8x4").build(shape, seed=0)
    teacher = ModelSpec("resnet20").build(shape, seed=1).eval()
    seen = []
    teacher.register_forward_hook(lambda m, i, out: seen.append((torch.is_inference_mode_enabled(),
                                                                 out.dtype)))
    xb, yb = shape.x_train[:16], shape.y_train[:16]
    loss_fn = make_loss("kd")
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    gen = torch.Generator().manual_seed(0)

    def loss_now():  # the loss on the un-augmented batch (batch statistics, no update)
        with torch.no_grad():
            return float(loss_fn(student(xb), teacher(xb), yb))

    before = loss_now()
    losses = [float(train_step(student, optimizer, scaler, xb, yb, loss_fn, teacher=teacher,
                               generator=gen, padding=1)) for _ in range(12)]
    assert all(np.isfinite(losses))
    assert loss_now() < 0.5 * before
    assert seen[0] == (False, torch.float32) and all(s == (True, torch.float32) for s in seen[1:-1])
    assert all(p.grad is None for p in teacher.parameters())


def test_cpu_training_is_plain_float32_in_the_default_layout():
    shape = fake_bundle()
    model = ModelSpec("resnet8x4").build(shape, seed=0)
    dtypes = []
    model.stem.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    cfg = RecipeConfig(**dict(TINY, epochs=1))
    result = fit(model, (shape.x_train, shape.y_train), (shape.x_test, shape.y_test), make_loss("ce"),
                 cfg, torch.device("cpu"))
    assert set(dtypes) == {torch.float32}
    assert model.stem[0].weight.is_contiguous()
    assert 0 <= result["test_acc"] <= result["best_test_acc"] <= 1 and result["images_per_s"] > 0


def test_run_recipe_trains_the_teacher_once_and_each_student(tmp_path):
    shape = fake_bundle()
    lines = []
    rows = run_recipe(data=shape, cache=tmp_path, log=lines.append, methods=("ce", "kd"), **TINY)
    assert list(rows["role"]) == ["teacher", "student", "student"]
    assert list(rows["method"]) == ["ce", "ce", "kd"]
    assert list(rows["params"]) == [278_324 - 95 * 64 - 95, 1_233_540 - 95 * 256 - 95] + [1_233_540 - 95 * 256 - 95]
    assert rows["test_acc"].between(0, 1).all() and (rows["images_per_s"] > 0).all()
    assert sum("epoch 2/2" in line for line in lines) == 3
    again = run_recipe(data=shape, cache=tmp_path, log=lines.append, methods=("kd",), **TINY)
    assert any("loaded from the cache" in line for line in lines)
    assert again["test_acc"].iloc[0] == rows["test_acc"].iloc[0]  # the same teacher
    assert again["test_acc"].iloc[1] == rows["test_acc"].iloc[2]  # the same kd student
    only_ce = run_recipe(data=shape, use_cache=False, log=None, methods=("ce",), **TINY)
    assert list(only_ce["role"]) == ["student"]  # no loss needs the teacher: none is trained


# ------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("amp,dtype", [("auto", None), ("fp16", torch.float16), ("off", torch.float32)])
def test_cuda_training_uses_autocast_and_channels_last(amp, dtype):
    device = torch.device("cuda")
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    shape = fake_bundle(n_train=64, size=32)
    student = ModelSpec("resnet8x4").build(shape, seed=0)
    teacher = ModelSpec("resnet20").build(shape, seed=1)
    seen = []
    student.stem.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    cfg = RecipeConfig(**dict(TINY, device="cuda", amp=amp, epochs=2))
    result = fit(student, (shape.x_train, shape.y_train), (shape.x_test, shape.y_test), make_loss("kd"),
                 cfg, device, teacher=teacher)
    assert dtype in seen
    assert student.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(result["history"][-1]["train_loss"])


@pytest.mark.cuda
def test_flip_crop_on_cuda_equals_the_cpu_reference_for_the_same_draws():
    x = torch.randn(32, 3, 8, 8)
    want, *_ = reference_flip_crop(x, seed=3, padding=4)
    got = data.flip_crop(x.cuda(), torch.Generator().manual_seed(3), padding=4)  # CPU draws, GPU crop
    assert got.device.type == "cuda"
    np.testing.assert_array_equal(got.cpu().numpy(), want)


def test_a_changed_setting_trains_a_new_teacher(tmp_path):
    shape, lines = fake_bundle(), []
    run_recipe(data=shape, cache=tmp_path, log=lines.append, methods=("kd",), **TINY)
    run_recipe(data=shape, cache=tmp_path, log=lines.append, methods=("kd",), **dict(TINY, lr=0.01))
    assert not any("loaded from the cache" in line for line in lines)


def test_the_cli_prints_the_table_and_the_published_numbers(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(data, "load", lambda name, root=None: fake_bundle())
    csv = tmp_path / "recipe.csv"
    code = main(["recipe", "cifar100-kd", "--epochs", "1", "--methods", "ce", "--device", "cpu",
                 "--batch-size", "16", "--no-cache", "--csv", str(csv)])
    out = capsys.readouterr().out
    assert code == 0
    assert "resnet8x4" in out and "79.42" in out and "73.33" in out and "76.62" in out
    import pandas as pd

    assert list(pd.read_csv(csv)["method"]) == ["ce"]


def test_the_recipe_commands_of_chapter_6_and_the_readme_parse():
    """Every ``python -m skdtutor recipe ...`` line the reader is told to run is a valid
    command of the real parser, naming the recipe and methods the package knows."""
    import json
    import re
    import shlex
    from pathlib import Path

    from skdtutor.__main__ import build_parser

    repo = Path(__file__).resolve().parents[1]
    nb = json.loads((repo / "book" / "06_results_at_a_glance.ipynb").read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    readme = (repo / "README.md").read_text()
    joined = lambda text: re.sub(r"[ ]*\\\n[ ]*", " ", text)  # a line continued with "\" is one line
    found = {name: re.findall(r"^(python -m skdtutor recipe [^#\n]*)", joined(text), flags=re.M)
             for name, text in (("chapter 6", markdown), ("README", readme))}
    assert all(found.values()), found
    for where, commands in found.items():
        for command in commands:
            args = build_parser().parse_args(shlex.split(command)[3:])
            assert (args.command, args.name) == ("recipe", "cifar100-kd"), (where, command)


def test_the_recipe_refuses_torchrun_before_any_work(monkeypatch, capsys):
    """Under torchrun every rank would run the whole recipe: refused with a clear message."""
    from skdtutor import recipe as recipe_mod
    from skdtutor.__main__ import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(recipe_mod, "run_recipe", lambda *a, **k: pytest.fail("trained"))
    assert main(["recipe", "cifar100-kd", "--epochs", "1", "--device", "cpu"]) == 2
    assert "without torchrun" in capsys.readouterr().err
