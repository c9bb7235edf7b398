"""Tests of skdtutor.data: embedded datasets and the torchvision path, fully offline."""
from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import pytest
import torch

from skdtutor import data

# ---------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits0():
    return data.load("digits", seed=0)


def _recover_digits_raw(bundle):
    """Invert the (scalar) normalisation using the training split's extremes.

    Raw digit pixels are the integers 0..16 and both extremes occur in the
    training split, so the affine map raw -> normalised is pinned down by them.
    """
    lo, hi = bundle.x_train.min().item(), bundle.x_train.max().item()

    def raw(x):
        r = (x.numpy().astype(np.float64) - lo) / (hi - lo) * 16.0
        return r

    return raw


def test_digits_shapes_and_classes(digits0):
    b = digits0
    assert b.input_shape == (1, 8, 8)
    assert b.num_classes == 10 and len(b.class_names) == 10
    for split in ("train", "val", "test"):
        x, y = b.split(split)
        assert x.shape[1:] == (1, 8, 8)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert len(x) == len(y) > 0
        assert set(y.tolist()) == set(range(10))
    assert len(b.y_train) + len(b.y_val) + len(b.y_test) == 1797
    # default fractions: 20% test, then 10% of the rest for validation (per class, rounded)
    assert abs(len(b.y_test) - 0.2 * 1797) <= 10
    assert abs(len(b.y_val) - 0.1 * (1797 - len(b.y_test))) <= 10


def test_digits_splits_partition_the_dataset(digits0):
    """Train, val and test together are exactly sklearn's 1797 (image, label) pairs, each once."""
    from sklearn.datasets import load_digits

    sk = load_digits()
    raw = _recover_digits_raw(digits0)
    seen = Counter()
    for split in ("train", "val", "test"):
        x, y = digits0.split(split)
        r = raw(x)
        # every split is normalised with the *training* map: raw values come back as integers
        np.testing.assert_allclose(r, np.round(r), atol=1e-3)
        for img, label in zip(np.round(r).astype(np.int64).reshape(len(y), -1), y.tolist()):
            seen[(img.tobytes(), label)] += 1
    expected = Counter((img.astype(np.int64).reshape(-1).tobytes(), int(label))
                       for img, label in zip(sk.images, sk.target))
    assert seen == expected


def test_digits_train_split_is_normalised(digits0):
    x = digits0.x_train.double()
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    # val/test are not renormalised on their own statistics
    assert abs(digits0.x_test.double().mean().item()) < 0.2


def test_digits_deterministic_for_a_seed(digits0):
    again = data.load("digits", seed=0)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(digits0, name), getattr(again, name)), name


def test_digits_other_seed_changes_val_but_not_test(digits0):
    other = data.load("digits", seed=1)
    # the test *images* are the same: compare after undoing each bundle's normalisation
    r0 = _recover_digits_raw(digits0)(digits0.x_test)
    r1 = _recover_digits_raw(other)(other.x_test)
    np.testing.assert_allclose(r0, r1, atol=1e-3)
    assert torch.equal(other.y_test, digits0.y_test)
    # the validation split differs
    v0 = np.round(_recover_digits_raw(digits0)(digits0.x_val)).reshape(len(digits0.y_val), -1)
    v1 = np.round(_recover_digits_raw(other)(other.x_val)).reshape(len(other.y_val), -1)
    assert v0.shape != v1.shape or not np.array_equal(v0, v1)
    # but keeps the same class counts (stratified)
    assert Counter(other.y_val.tolist()) == Counter(digits0.y_val.tolist())


def test_digits_val_is_stratified(digits0):
    train = Counter(digits0.y_train.tolist())
    val = Counter(digits0.y_val.tolist())
    for c in range(10):
        n = train[c] + val[c]
        assert val[c] == int(round(0.1 * n))


def test_unknown_dataset_raises():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="digits"):
        data.load("not-a-dataset")


def test_bad_val_fraction_raises():
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            data.load("digits", val_fraction=bad)


@pytest.mark.parametrize("bad", [-0.2, 1.0, 1.5])
def test_bad_test_fraction_raises(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        data.load("digits", test_fraction=bad)


def test_split_and_subset(digits0):
    with pytest.raises(ValueError, match="split"):
        digits0.split("training")
    sub = digits0.subset([0, 5, 7])
    assert torch.equal(sub.x_train, digits0.x_train[[0, 5, 7]])
    assert torch.equal(sub.y_train, digits0.y_train[[0, 5, 7]])
    assert sub.x_val is digits0.x_val and sub.x_test is digits0.x_test


# --------------------------------------------------------------------- mnist1d

def test_mnist1d():
    b = data.load("mnist1d", seed=0)
    assert b.input_shape == (1, 40)
    assert b.x_train.shape[1:] == (1, 40) and b.x_test.shape[1:] == (1, 40)
    assert len(b.y_train) + len(b.y_val) == 4000
    assert len(b.y_test) == 1000
    assert b.num_classes == 10
    assert set(b.y_test.tolist()) == set(range(10))
    x = b.x_train.double()
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(b.x_val).all() and torch.isfinite(b.x_test).all()


# ------------------------------------------------------- torchvision (offline IDX)

def _write_idx_images(path, images):
    n, h, w = images.shape
    path.write_bytes(struct.pack(">iiii", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes())


def _write_idx_labels(path, labels):
    path.write_bytes(struct.pack(">ii", 0x00000801, len(labels)) + np.asarray(labels, np.uint8).tobytes())


def _fake_images(ids, brightness):
    """28x28 uint8 images; pixel (0,0)=0 and (0,1)=255 in every image, (0,2) = a unique id."""
    imgs = np.empty((len(ids), 28, 28), dtype=np.uint8)
    grid = np.arange(28 * 28).reshape(28, 28)
    for k, i in enumerate(ids):
        imgs[k] = (brightness + (grid * (i + 3)) % 150).astype(np.uint8)
        imgs[k, 0, 0], imgs[k, 0, 1], imgs[k, 0, 2] = 0, 255, i
    return imgs


@pytest.fixture
def fake_idx(tmp_path):
    def make(folder):
        raw = tmp_path / folder / "raw"
        raw.mkdir(parents=True)
        train_ids = list(range(100))
        train_labels = [i % 10 for i in train_ids]
        test_ids = list(range(100, 120))
        test_labels = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
        train_imgs = _fake_images(train_ids, brightness=0)
        test_imgs = _fake_images(test_ids, brightness=90)  # brighter: test stats differ from train
        _write_idx_images(raw / "train-images-idx3-ubyte", train_imgs)
        _write_idx_labels(raw / "train-labels-idx1-ubyte", train_labels)
        _write_idx_images(raw / "t10k-images-idx3-ubyte", test_imgs)
        _write_idx_labels(raw / "t10k-labels-idx1-ubyte", test_labels)
        return {"train": (train_imgs, train_labels), "test": (test_imgs, test_labels)}
    return make


def _invert(x):
    """Undo the affine normalisation via the pixels known to be raw 0 and raw 255."""
    x = x.numpy().astype(np.float64)
    z0, z255 = x[:, 0, 0, 0], x[:, 0, 0, 1]
    sd = 1.0 / (z255 - z0)  # in units of raw/255
    mu = -z0 * sd
    return (x * sd[:, None, None, None] + mu[:, None, None, None]) * 255.0, mu, sd


@pytest.mark.parametrize("name,folder,first_class", [("mnist", "MNIST", "0 - zero"),
                                                     ("fashion-mnist", "FashionMNIST", "T-shirt/top"),
                                                     ("fashion_mnist", "FashionMNIST", "T-shirt/top")])
def test_torchvision_idx_offline(tmp_path, fake_idx, name, folder, first_class):
    written = fake_idx(folder)
    b = data.load(name, root=tmp_path, download=False, seed=0)
    assert b.input_shape == (1, 28, 28)
    assert b.num_classes == 10 and b.class_names[0] == first_class
    for split in ("train", "val", "test"):
        x, y = b.split(split)
        assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(b.y_train) == 90 and len(b.y_val) == 10 and len(b.y_test) == 20
    # labels: exact order on test, same multiset over train + val
    assert b.y_test.tolist() == written["test"][1]
    assert Counter(b.y_train.tolist() + b.y_val.tolist()) == Counter(written["train"][1])
    assert Counter(b.y_val.tolist()) == Counter(range(10))  # 10% per class

    # every split uses the same (training) affine map
    raws, mus, sds = {}, [], []
    for split in ("train", "val", "test"):
        r, mu, sd = _invert(b.split(split)[0])
        raws[split] = r
        mus.append(mu)
        sds.append(sd)
    mus, sds = np.concatenate(mus), np.concatenate(sds)
    np.testing.assert_allclose(mus, mus[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sds, sds[0], rtol=1e-4)

    # pixels come back exactly; images pair with their labels; test keeps its order
    train_imgs, train_labels = written["train"]
    for split in ("train", "val"):
        r = raws[split]
        np.testing.assert_allclose(r, np.round(r), atol=1e-2)
        ids = np.round(r[:, 0, 0, 2]).astype(int)
        np.testing.assert_array_equal(np.round(r[:, 0]).astype(np.uint8), train_imgs[ids])
        assert b.split(split)[1].tolist() == [train_labels[i] for i in ids]
    train_ids = np.round(raws["train"][:, 0, 0, 2]).astype(int)
    val_ids = np.round(raws["val"][:, 0, 0, 2]).astype(int)
    assert sorted(train_ids.tolist() + val_ids.tolist()) == list(range(100))  # disjoint, complete
    np.testing.assert_array_equal(np.round(raws["test"][:, 0]).astype(np.uint8), written["test"][0])

    # the map is the training split's mean and (population) std, on the 0..1 scale
    train_pixels = train_imgs[train_ids].astype(np.float64) / 255.0
    assert mus[0] == pytest.approx(train_pixels.mean(), rel=1e-4)
    assert sds[0] == pytest.approx(train_pixels.std(), rel=1e-4)
    assert b.x_train.double().mean().item() == pytest.approx(0.0, abs=1e-4)
    assert b.x_train.double().std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    # test images are brighter, so *not* normalised on their own statistics
    assert b.x_test.double().mean().item() > 0.5


def test_torchvision_missing_files_offline_raise_file_not_found(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        data.load("mnist", root=empty, download=False)
    msg = str(info.value)
    assert str(empty) in msg
    assert "digits" in msg and "mnist1d" in msg
    assert "train-images-idx3-ubyte" in msg


def test_torchvision_default_root_follows_env(tmp_path, monkeypatch):
    root = tmp_path / "envroot"
    monkeypatch.setenv("SKDTUTOR_DATA", str(root))
    assert data.default_root() == root
    with pytest.raises(FileNotFoundError, match="digits"):
        data.load("fashion-mnist", download=False)
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", download=False)
    assert str(root) in str(info.value)
