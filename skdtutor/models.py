"""Small model families, each with one capacity knob.

``MLP(width, depth)`` and ``CNN(width)`` (1-D convolutions for ``mnist1d``,
2-D for images) cover every experiment in the book on a CPU; ``resnet`` wraps
torchvision's ResNets for CIFAR readers with a GPU, and ``resnet8x4``, ``resnet32x4``,
``resnet20`` and ``resnet56`` are the CIFAR ResNets of the distillation literature
(:mod:`skdtutor.resnet_cifar`, used by the ``cifar100-kd`` recipe of :mod:`skdtutor.recipe`).
``MLP`` and ``CNN`` use neither batch norm nor dropout, so a sweep of them trains as one stacked model
(:func:`skdtutor.sweep.distill_sweep`) with exactly the arithmetic of a single
run; the ResNets use batch norm, so their students are trained one after another.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .resnet_cifar import CIFAR_RESNETS, cifar_resnet

__all__ = ["MLP", "CNN", "resnet", "build_model", "count_parameters", "MODEL_NAMES"]


class MLP(nn.Module):
    """Flatten, then ``depth`` hidden layers of ``width`` ReLU units, then a linear classifier."""

    def __init__(self, input_shape, num_classes: int, width: int = 128, depth: int = 2):
        super().__init__()
        if width < 1 or depth < 0:
            raise ValueError(f"MLP needs width >= 1 and depth >= 0, got width={width}, depth={depth}")
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        layers.append(nn.Linear(fan_in, num_classes))
        self.net = nn.Sequential(*layers)
        self.input_shape, self.width, self.depth = tuple(input_shape), width, depth

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    """Three conv-ReLU blocks (``width``, ``2*width``, ``2*width`` channels; the last two with
    stride 2), then flatten and a linear classifier. 1-D convolutions for inputs ``(C, L)``,
    2-D for ``(C, H, W)``. Flattening (rather than global pooling) keeps the position of
    features, which MNIST-1D needs."""

    def __init__(self, input_shape, num_classes: int, width: int = 32):
        super().__init__()
        if width < 1:
            raise ValueError(f"CNN needs width >= 1, got {width}")
        if len(input_shape) == 2:
            conv = nn.Conv1d
        elif len(input_shape) == 3:
            conv = nn.Conv2d
        else:
            raise ValueError(f"CNN takes inputs (C, L) or (C, H, W), got input_shape={tuple(input_shape)}")
        c_in = input_shape[0]
        self.features = nn.Sequential(
            conv(c_in, width, 3, padding=1), nn.ReLU(),
            conv(width, 2 * width, 3, padding=1, stride=2), nn.ReLU(),
            conv(2 * width, 2 * width, 3, padding=1, stride=2), nn.ReLU(),
            nn.Flatten())
        with torch.no_grad():  # size of the flattened features (no RNG is consumed)
            fan_in = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.classifier = nn.Linear(fan_in, num_classes)
        self.input_shape, self.width = tuple(input_shape), width

    def forward(self, x):
        return self.classifier(self.features(x))


def resnet(input_shape, num_classes: int, depth: int = 18):
    """A torchvision ResNet (18, 34 or 50) for small images: 3x3 stem, no max-pool."""
    import torchvision

    builders = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34,
                50: torchvision.models.resnet50}
    if depth not in builders:
        raise ValueError(f"resnet depth must be one of {sorted(builders)}, got {depth}")
    model = builders[depth](weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


MODEL_NAMES = ("mlp", "cnn", "resnet18", "resnet34", "resnet50", *CIFAR_RESNETS)


def build_model(name: str, data, width: int | None = None, depth: int | None = None,
                seed: int | None = None) -> nn.Module:
    """Build a model by name for a :class:`~skdtutor.data.DataBundle` (or anything with
    ``input_shape`` and ``num_classes``). With ``seed``, the initial weights are fixed by it."""
    key = name.lower()
    if key not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if depth is not None and key != "mlp":
        raise ValueError(f"depth applies to 'mlp' only; pass depth=None for {name!r}")
    if width is not None and key in CIFAR_RESNETS:
        raise ValueError(f"{name} has fixed widths; pass width=None (width applies to 'mlp' and 'cnn')")
    if seed is not None:
        torch.manual_seed(seed)
    if key == "mlp":
        return MLP(data.input_shape, data.num_classes, width=128 if width is None else width,
                   depth=2 if depth is None else depth)
    if key == "cnn":
        return CNN(data.input_shape, data.num_classes, width=32 if width is None else width)
    if len(data.input_shape) != 3:
        raise ValueError(f"{name} needs image inputs (C, H, W), got {data.input_shape}; use 'mlp' or 'cnn'")
    if key in CIFAR_RESNETS:
        return cifar_resnet(key, data.input_shape, data.num_classes)
    return resnet(data.input_shape, data.num_classes, depth=int(key[6:]))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
