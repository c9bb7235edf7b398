"""Tests of skdtutor.config (validation, composition) and of the cache (skdtutor.cache)."""
from __future__ import annotations

import dataclasses
import warnings

import pandas as pd
import pytest
import torch

from skdtutor import cache, config, train
from skdtutor import data as data_mod
from skdtutor.config import ModelSpec, TrainConfig


@pytest.mark.parametrize("field,value", [("epochs", 0), ("epochs", -3), ("epochs", 2.5), ("epochs", True),
                                         ("batch_size", 0), ("eval_every", 0), ("threads", 0),
                                         ("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")),
                                         ("weight_decay", -0.1), ("seed", 1.5)])
def test_train_config_refuses_bad_values_and_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_train_config_replace_validates_and_refuses_unknown_fields():
    cfg = TrainConfig(epochs=5)
    assert cfg.replace(lr=3e-3) == TrainConfig(epochs=5, lr=3e-3)
    with pytest.raises(ValueError, match="epochs"):
        cfg.replace(epochs=0)
    with pytest.raises(ValueError, match="unknown training setting"):
        cfg.replace(learning_rate=1e-3)


@pytest.mark.parametrize("kw,needle", [(dict(name="vgg"), "unknown model"), (dict(width=0), "width"),
                                       (dict(name="cnn", depth=1), "depth"), (dict(depth=-1), "depth")])
def test_model_spec_validation(kw, needle):
    with pytest.raises(ValueError, match=needle):
        ModelSpec(**kw)


def test_model_spec_builds_the_model_it_names():
    digits = data_mod.load("digits")
    mlp = ModelSpec("mlp", width=7, depth=2).build(digits, seed=0)
    assert [m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)] == [7, 7, 10]
    again = ModelSpec("mlp", width=7, depth=2).build(digits, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(mlp.parameters(), again.parameters()))
    assert ModelSpec("cnn", width=4).build(digits).features[0].out_channels == 4


def test_settings_compose_specs_and_configs():
    s = config.setting_for("mnist1d")
    assert (s.teacher, s.student) == (ModelSpec("cnn", 32), ModelSpec("mlp", 128, 2))
    assert (s.teacher_train.epochs, s.student_train.epochs, s.student_train.lr) == (40, 60, 3e-3)
    assert s.teacher_train.batch_size == s.student_train.batch_size == 128
    assert config.setting_for("CIFAR10").teacher.width is None
    with pytest.raises(ValueError, match="no default setting"):
        config.setting_for("imagenet")


def test_every_dataset_has_a_setting():
    assert set(data_mod.DATASETS) <= set(config.SETTINGS)


def test_an_explicit_zero_is_an_error_not_a_default():
    digits = data_mod.load("digits")
    model = ModelSpec("mlp", 8, 1).build(digits, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        train.train_teacher(model, digits, 0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train.train_teacher(model, digits, 1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="unknown training setting"):
        train.train_teacher(model, digits, 1, learning_rate=0.1, progress=False)
    from skdtutor.studies import compare
    with pytest.raises(ValueError, match="epochs"):
        compare("digits", methods=("ce",), seeds=1, teacher_epochs=0)


def test_trainer_defaults_come_from_train_config():
    digits = data_mod.load("digits")
    model = ModelSpec("mlp", 8, 1).build(digits, seed=0)
    h = train.train_teacher(model, digits, 1, progress=False)
    default = TrainConfig()
    assert (h.config["lr"], h.config["batch_size"], h.config["weight_decay"]) == \
        (default.lr, default.batch_size, default.weight_decay)
    h = train.train_teacher(model, digits, config=TrainConfig(epochs=2, lr=2e-3), progress=False)
    assert (h.config["epochs"], h.config["lr"], len(h.rows)) == (2, 2e-3, 2)


# ------------------------------------------------------------------------------- cache
def test_cache_round_trip_is_atomic_and_keyed(tmp_path):
    a = cache.entry_path("students", ("digits", 1, [2.0, "x"]), tmp_path, device="cpu")
    b = cache.entry_path("students", ("digits", 1, [2.0, "y"]), tmp_path, device="cpu")
    assert a != b and a.parent == tmp_path and a.name.startswith("students-")
    assert cache.load(a) is None
    obj = {"rows": [1, 2.5, "three", None], "t": torch.arange(3)}
    cache.save(a, obj)
    got = cache.load(a)
    assert got["rows"] == obj["rows"] and torch.equal(got["t"], obj["t"])
    assert list(tmp_path.iterdir()) == [a]  # no temporary file left behind


def test_damaged_entry_warns_once_and_reads_as_missing(tmp_path):
    path = tmp_path / "teacher-damaged.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="teacher-damaged"):
        assert cache.load(path) is None
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert cache.load(path) is None
    assert again == []  # warned once only


def test_frames_round_trip_with_their_dtypes():
    frame = pd.DataFrame({"method": ["ce", "kd"], "T": [float("nan"), 4.0], "seed": [0, 1],
                          "ok": [True, False], "teacher": [None, "a"]})
    back = cache.frame_from_dict(cache.frame_to_dict(frame))
    pd.testing.assert_frame_equal(back, frame)


def test_schema_version_is_part_of_the_key(tmp_path, monkeypatch):
    before = cache.entry_path("teacher", ("k",), tmp_path, device="cpu")
    monkeypatch.setattr(cache, "SCHEMA_VERSION", cache.SCHEMA_VERSION + 1)
    assert cache.entry_path("teacher", ("k",), tmp_path, device="cpu") != before


def test_config_is_hashable_into_keys():
    s = config.setting_for("digits")
    assert repr(dataclasses.replace(s.teacher_train, epochs=3)) != repr(s.teacher_train)


def test_epochs_have_a_documented_upper_bound():
    assert TrainConfig(epochs=config.MAX_EPOCHS).epochs == config.MAX_EPOCHS
    with pytest.raises(ValueError, match="MAX_EPOCHS"):
        TrainConfig(epochs=config.MAX_EPOCHS + 1)
    with pytest.raises(ValueError, match="MAX_EPOCHS"):
        TrainConfig(epochs=1_000_000_000_000)


@pytest.mark.parametrize("device", ["foo", "gpu0", 3, ""])
def test_an_unknown_device_is_a_clear_value_error(device):
    with pytest.raises(ValueError, match="unknown device"):
        TrainConfig(device=device)
    with pytest.raises(ValueError, match="unknown device"):
        train.resolve_device(device if device != "" else "foo")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_a_clear_value_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        train.resolve_device("cuda")


def test_cache_folder_must_be_writable(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder.*--no-cache"):
        cache.check_writable(afile)
    with pytest.raises(ValueError, match="not writable"):
        cache.check_writable(afile / "sub")  # a folder cannot be made under a file
    assert cache.check_writable(tmp_path / "new" / "dir").is_dir()


def test_entries_carry_a_checksum_and_refuse_any_change(tmp_path):
    path = tmp_path / "entry.pt"
    cache.save(path, {"w": torch.arange(1000.0)})
    blob = path.read_bytes()
    assert blob.startswith(cache.MAGIC)
    for i in (len(cache.MAGIC) + 3, len(blob) // 2, len(blob) - 1):  # header, payload, last byte
        bad = bytearray(blob)
        bad[i] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(cache.DamagedEntry, match="entry.pt"):
            cache.read(path)
    path.write_bytes(blob[:-1])
    with pytest.raises(cache.DamagedEntry, match="truncated"):
        cache.read(path)


def test_key_holds_code_version_and_device(tmp_path, monkeypatch):
    before = cache.entry_path("teacher", ("k",), tmp_path, device="cpu")
    monkeypatch.setattr(cache, "_code_version", lambda: ("9.9.9", "9.9"))
    assert cache.entry_path("teacher", ("k",), tmp_path, device="cpu") != before
    monkeypatch.undo()
    if torch.cuda.is_available():
        assert cache.entry_path("teacher", ("k",), tmp_path, device="cuda") != before
    else:  # the device type is hashed: another type gives another name
        monkeypatch.setattr("skdtutor.steps.resolve_device", lambda d: torch.device("cuda"))
        assert cache.entry_path("teacher", ("k",), tmp_path, device="cuda") != before


def test_damaged_entry_rejected_by_validate_warns_and_reads_as_missing(tmp_path):
    path = tmp_path / "teacher-shape.pt"
    cache.save(path, {"w": torch.zeros(3)})

    def fits(obj):
        if obj["w"].shape != (4,):
            raise ValueError("w has the wrong shape")

    with pytest.warns(RuntimeWarning, match="teacher-shape.*wrong shape"):
        assert cache.load(path, validate=fits) is None
    assert cache.load(path)["w"].shape == (3,)
