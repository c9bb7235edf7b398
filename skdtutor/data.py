"""Datasets as small in-memory bundles of tensors.

Two datasets are embedded and need no network: ``"digits"`` (scikit-learn's 1,797
bundled 8x8 handwritten digits, the default) and ``"mnist1d"`` (generated locally by
the ``mnist1d`` package). ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` and
``"cifar100"`` go through torchvision and download on first use when online.

Every split is held in memory as float32 tensors, normalised with the training
set's statistics, so trainers batch by index instead of through a DataLoader.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["DataBundle", "load", "DATASETS", "OFFLINE_DATASETS", "default_root", "flip_crop",
           "stratified_split"]

OFFLINE_DATASETS = ("digits", "mnist1d")
TORCHVISION_DATASETS = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
DATASETS = OFFLINE_DATASETS + tuple(TORCHVISION_DATASETS)


@dataclass
class DataBundle:
    """Train/validation/test tensors of one dataset, kept in memory.

    ``x_*`` are float32 of shape ``(n, *input_shape)``; ``y_*`` are int64 of shape ``(n,)``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    input_shape: tuple[int, ...]
    num_classes: int
    seed: int = 0
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"DataBundle({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, input_shape={self.input_shape}, classes={self.num_classes})")

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose 'train', 'val' or 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def subset(self, train_indices) -> "DataBundle":
        """A copy whose training split keeps only ``train_indices`` (val and test unchanged)."""
        idx = torch.as_tensor(train_indices, dtype=torch.long)
        return DataBundle(self.name, self.x_train[idx], self.y_train[idx], self.x_val, self.y_val,
                          self.x_test, self.y_test, self.class_names, self.input_shape,
                          self.num_classes, self.seed, dict(self.info, train_subset=len(idx)))


def default_root() -> Path:
    """Where downloaded datasets live: ``$SKDTUTOR_DATA`` or ``~/.cache/skdtutor/data``."""
    return Path(os.environ.get("SKDTUTOR_DATA", Path.home() / ".cache" / "skdtutor" / "data"))


def stratified_split(y, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0 .. len(y)-1`` into ``(keep, held_out)``, stratified by class.

    Parameters
    ----------
    y : 1-D array-like (NumPy array, list or tensor) of class labels.
    fraction : in ``[0, 1]``: the share of every class that goes to ``held_out``
        (``round(fraction * n_c)`` samples of a class with ``n_c`` samples).
    seed : seed of the NumPy generator that shuffles each class; the split is
        deterministic in it.

    Returns
    -------
    keep, held_out : sorted int64 index arrays that together cover every index once.
    """
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    rng = np.random.default_rng(seed)
    keep, held = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _bundle(name, x_train, y_train, x_test, y_test, class_names, input_shape, seed,
            val_fraction, per_channel: bool, info=None) -> DataBundle:
    x_train = np.asarray(x_train, dtype=np.float32)
    x_test = np.asarray(x_test, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    tr, va = stratified_split(y_train, val_fraction, seed)
    x_tr, x_va = x_train[tr], x_train[va]
    # Normalise with training statistics only (per channel for images).
    axes = (0,) + tuple(range(2, x_tr.ndim)) if per_channel else None
    mean = x_tr.mean(axis=axes, keepdims=per_channel)
    std = x_tr.std(axis=axes, keepdims=per_channel) + 1e-8

    def norm(a):
        return torch.from_numpy(((a - mean) / std).astype(np.float32).reshape(len(a), *input_shape))

    return DataBundle(name, norm(x_tr), torch.from_numpy(y_train[tr]), norm(x_va),
                      torch.from_numpy(y_train[va]), norm(x_test), torch.from_numpy(y_test),
                      list(class_names), tuple(input_shape), len(class_names), seed, info or {})


def _load_digits(seed, val_fraction, test_fraction):
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target
    # The test split is fixed (seed 0) so that every seed is scored on the same images.
    rest, test = stratified_split(y, test_fraction, 0)
    return _bundle("digits", x[rest], y[rest], x[test], y[test], [str(i) for i in range(10)],
                   (1, 8, 8), seed, val_fraction, per_channel=False)


def _load_mnist1d(seed, val_fraction, num_samples=5000, train_split=0.8):
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
    return _bundle("mnist1d", data["x"], data["y"], data["x_test"], data["y_test"],
                   [str(i) for i in range(10)], (1, length), seed, val_fraction, per_channel=False,
                   info={"generator_seed": args.seed})


def _expected_files(cls_name: str) -> list[str]:
    if cls_name in ("MNIST", "FashionMNIST"):
        return [f"{cls_name}/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    if cls_name == "CIFAR10":
        return ["cifar-10-batches-py/data_batch_1 ... data_batch_5", "cifar-10-batches-py/test_batch"]
    return ["cifar-100-python/train", "cifar-100-python/test"]


def _load_torchvision(name, root, download, seed, val_fraction):
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
        return x.astype(np.float32) / 255.0, y

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    return _bundle(name, x_train, y_train, x_test, y_test, train.classes, x_train.shape[1:], seed,
                   val_fraction, per_channel=True, info={"root": str(root)})


def load(name: str = "digits", root=None, download: bool = True, seed: int = 0,
         val_fraction: float = 0.1, test_fraction: float = 0.2) -> DataBundle:
    """Load a dataset as a :class:`DataBundle` of in-memory tensors.

    Parameters
    ----------
    name : ``"digits"`` (default), ``"mnist1d"``, ``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"`` or ``"cifar100"``.
    root : folder for the torchvision datasets (default :func:`default_root`).
        Ignored by the embedded datasets.
    download : let torchvision download missing files (torchvision datasets only).
    seed : seed of the train/validation split (deterministic for a seed). The
        test split never depends on it.
    val_fraction : fraction of the training set held out for validation, per class.
    test_fraction : ``digits`` only (it ships no test split): fraction held out for testing.

    Raises
    ------
    ValueError for an unknown name; FileNotFoundError when a torchvision dataset
    is missing and cannot be downloaded (the message names the root and files).
    """
    key = str(name).lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         f"(offline: {', '.join(OFFLINE_DATASETS)})")
    if key == "digits":
        return _load_digits(seed, val_fraction, test_fraction)
    if key == "mnist1d":
        return _load_mnist1d(seed, val_fraction)
    return _load_torchvision(key, root, download, seed, val_fraction)


def flip_crop(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch ``(n, C, H, W)``: random horizontal flip and
    random crop after zero-padding by ``padding`` pixels."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator, device="cpu") < 0.5
    x = torch.where(flip.to(x.device).view(n, 1, 1, 1), x.flip(-1), x)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").tolist()
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
