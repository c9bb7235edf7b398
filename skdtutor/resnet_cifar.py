"""The CIFAR ResNets of the distillation literature: resnet8x4, resnet32x4, resnet20, resnet56.

He et al. (2016, section 4.2) built their CIFAR ResNets from a 3x3 stem and three stages of
basic blocks at 32x32, 16x16 and 8x8, with ``n`` blocks per stage, so depth ``= 6n + 2``.
The CRD benchmark (Tian et al. 2020) and mdistiller (Zhao et al. 2022) added the ``x4``
variants, four times wider, which are the usual teacher/student pair on CIFAR-100:
resnet32x4 (about 7.4M parameters) teaches resnet8x4 (about 1.2M).

=============  =====  ==========================  =========================
name           depth  channels (stem, stages)     parameters, 100 classes
=============  =====  ==========================  =========================
``resnet8x4``      8  32, 64, 128, 256            1,233,540
``resnet32x4``    32  32, 64, 128, 256            7,433,860
``resnet20``      20  16, 16, 32, 64              278,324
``resnet56``      56  16, 16, 32, 64              861,620
=============  =====  ==========================  =========================

A basic block is ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``; the shortcut is
the identity, or a strided 1x1 convolution with batch norm where the shape changes (the
"option B" shortcut of the CRD code). The head is a global average pool and one linear
layer. Weights start as in that code: convolutions Kaiming-normal (fan-out, ReLU gain),
batch norm scale 1 and shift 0, the linear layer PyTorch's default.
"""
from __future__ import annotations

from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "CIFAR_RESNETS", "cifar_resnet"]

# name -> (depth, (stem channels, stage 1, stage 2, stage 3)), as in the CRD / mdistiller code.
CIFAR_RESNETS = {
    "resnet8x4": (8, (32, 64, 128, 256)),
    "resnet32x4": (32, (32, 64, 128, 256)),
    "resnet20": (20, (16, 16, 32, 64)),
    "resnet56": (56, (16, 16, 32, 64)),
}


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, ``conv1`` with ``stride``."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = _conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A CIFAR ResNet of ``depth = 6n + 2`` layers and ``channels = (stem, s1, s2, s3)``.

    Stage ``k`` holds ``n`` basic blocks of ``channels[k]`` channels; stages 2 and 3 start
    with stride 2, so a 32x32 input leaves stage 3 at 8x8 before the global average pool.
    ``forward`` returns the logits only.
    """

    def __init__(self, depth: int, channels, num_classes: int, in_channels: int = 3):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2 with n >= 1 (8, 14, 20, 32, 56, "
                             f"110, ...), got depth={depth!r}")
        channels = tuple(channels)
        if len(channels) != 4 or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be 4 positive integers (stem, stage 1, 2, 3), got {channels}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(_conv3x3(in_channels, channels[0]), nn.BatchNorm2d(channels[0]),
                                  nn.ReLU(inplace=True))
        stages, c_in = [], channels[0]
        for k, c_out in enumerate(channels[1:]):
            stride = 1 if k == 0 else 2
            layers = [BasicBlock(c_in, c_out, stride)]
            layers += [BasicBlock(c_out, c_out) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.depth, self.channels = depth, channels

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))))


def cifar_resnet(name: str, input_shape, num_classes: int) -> CifarResNet:
    """The CIFAR ResNet ``name`` (a key of :data:`CIFAR_RESNETS`) for inputs ``(C, H, W)``."""
    if name not in CIFAR_RESNETS:
        raise ValueError(f"unknown CIFAR ResNet {name!r}; choose one of {', '.join(CIFAR_RESNETS)}")
    if len(input_shape) != 3:
        raise ValueError(f"{name} needs image inputs (C, H, W), got input_shape={tuple(input_shape)}")
    depth, channels = CIFAR_RESNETS[name]
    return CifarResNet(depth, channels, num_classes, in_channels=input_shape[0])
