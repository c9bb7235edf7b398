"""In-memory datasets: :class:`DataBundle`, its :class:`Normalisation` and the split helpers.

A bundle holds the train, validation and test splits of one dataset as float32 tensors,
normalised with the training split's statistics, so trainers batch by index instead of
through a DataLoader. The statistics are kept in the bundle: :meth:`DataBundle.prepare` maps
raw inputs in the dataset's own units to exactly what the bundle's models take.

:func:`build_bundle` is how every loader in :mod:`skdtutor.datasets` makes one: it splits off
a stratified validation set (:func:`stratified_split`, deterministic in the seed) and
normalises every split (per channel for 28x28 and 32x32 images, after dividing pixels by
255). :func:`check_split_leaves` rejects a fraction that would leave a split empty, before
any splitting. Users load bundles with :func:`skdtutor.data.load`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["DataBundle", "Normalisation", "stratified_split", "check_split_leaves", "build_bundle"]


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


def check_split_leaves(y: np.ndarray, fraction: float, name: str, held: str, kept: str) -> None:
    """Raise if :func:`stratified_split` of ``y`` by ``fraction`` leaves either side empty.

    ``name`` is the argument's name and ``held``/``kept`` name the two sides, for the message
    (e.g. ``"val_fraction"``, ``"validation"``, ``"training"``)."""
    _, counts = np.unique(y, return_counts=True)
    n_held = sum(int(round(fraction * n)) for n in counts)
    if n_held == 0:
        raise ValueError(f"{name}={fraction!r} leaves the {held} split empty (the largest of the "
                         f"{len(counts)} classes has {counts.max()} samples); use a larger {name}")
    if n_held == counts.sum():
        raise ValueError(f"{name}={fraction!r} leaves the {kept} split empty (the smallest of the "
                         f"{len(counts)} classes has {counts.min()} samples); use a smaller {name}")


def build_bundle(name, x_train, y_train, x_test, y_test, class_names, input_shape, seed,
                 val_fraction, per_channel: bool, scale: float = 1.0, units: str = "raw values",
                 info=None) -> DataBundle:
    """Split off validation (stratified, by ``seed``) and normalise every split with the
    training split's statistics of ``x / scale``. ``x_*`` are raw, in any layout that
    reshapes to ``(n, *input_shape)`` (images already channel-first); ``per_channel``
    takes the statistics per channel (axis 1), else over everything; ``units`` names the
    raw units for :meth:`DataBundle.prepare`'s messages."""
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    check_split_leaves(y_train, val_fraction, "val_fraction", "validation", "training")
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
