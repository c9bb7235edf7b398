"""The CIFAR ResNets (skdtutor.resnet_cifar): sizes against a closed-form count and the
published ones, the layer count of the depth, the stage resolutions and the registry."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from skdtutor.config import ModelSpec
from skdtutor.models import MODEL_NAMES, count_parameters
from skdtutor.resnet_cifar import CIFAR_RESNETS, CifarResNet, cifar_resnet


class Shape:  # what build_model needs from a DataBundle
    def __init__(self, input_shape=(3, 32, 32), num_classes=100):
        self.input_shape, self.num_classes = input_shape, num_classes


def counted_by_formula(depth, channels, classes, c_in=3):
    """Parameters of a 6n+2 CIFAR ResNet, written out: a 3x3 conv has 9 c_in c_out weights,
    a batch norm 2c, a 1x1 projection shortcut c_in c_out + 2c, the head C(c3 + 1)."""
    n = (depth - 2) // 6
    stem, widths = channels[0], channels[1:]
    total = 9 * c_in * stem + 2 * stem
    previous = stem
    for k, c in enumerate(widths):
        first = 9 * previous * c + 2 * c + 9 * c * c + 2 * c
        if k > 0 or previous != c:
            first += previous * c + 2 * c
        total += first + (n - 1) * (2 * (9 * c * c + 2 * c))
        previous = c
    return total + widths[-1] * classes + classes


@pytest.mark.parametrize("name,depth,channels", [
    ("resnet8x4", 8, (32, 64, 128, 256)), ("resnet32x4", 32, (32, 64, 128, 256)),
    ("resnet20", 20, (16, 16, 32, 64)), ("resnet56", 56, (16, 16, 32, 64))])
@pytest.mark.parametrize("classes", [10, 100])
def test_parameter_counts_equal_the_closed_form(name, depth, channels, classes):
    model = cifar_resnet(name, (3, 32, 32), classes)
    assert count_parameters(model) == counted_by_formula(depth, channels, classes)


@pytest.mark.parametrize("name,classes,published_millions,rounding", [
    ("resnet8x4", 100, 1.2, 0.05),   # CRD / mdistiller: resnet8x4 about 1.2M
    ("resnet32x4", 100, 7.4, 0.05),  # resnet32x4 about 7.4M
    ("resnet20", 10, 0.27, 0.005),   # He et al. 2016, Table 6 (CIFAR-10)
    ("resnet56", 10, 0.85, 0.01),    # ibid.; projection shortcuts add 2.7k to option A's 0.853M
])
def test_parameter_counts_match_the_published_ones(name, classes, published_millions, rounding):
    millions = count_parameters(cifar_resnet(name, (3, 32, 32), classes)) / 1e6
    assert abs(millions - published_millions) <= rounding, millions


@pytest.mark.parametrize("name", list(CIFAR_RESNETS))
def test_depth_counts_the_3x3_convolutions_and_the_classifier(name):
    model = cifar_resnet(name, (3, 32, 32), 100)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == CIFAR_RESNETS[name][0]


def test_stages_run_at_32_16_8_pixels_and_the_logits_have_one_column_per_class():
    model = cifar_resnet("resnet8x4", (3, 32, 32), 100).eval()
    sizes = []
    for stage in model.stages:
        stage.register_forward_hook(lambda m, i, out: sizes.append(tuple(out.shape[1:])))
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 100)
    assert sizes == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]


def test_the_registry_builds_them_by_name_with_the_data_shape():
    assert set(CIFAR_RESNETS) <= set(MODEL_NAMES)
    a = ModelSpec("resnet8x4").build(Shape((1, 16, 16), 7), seed=3)
    b = ModelSpec("resnet8x4").build(Shape((1, 16, 16), 7), seed=3)
    assert a.stem[0].in_channels == 1 and a.fc.out_features == 7
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # seed fixes the weights
    assert a(torch.randn(3, 1, 16, 16)).shape == (3, 7)


@pytest.mark.parametrize("make,needle", [
    (lambda: CifarResNet(10, (16, 16, 32, 64), 10), r"6n \+ 2"),
    (lambda: CifarResNet(2, (16, 16, 32, 64), 10), r"6n \+ 2"),
    (lambda: CifarResNet(8, (16, 16, 32), 10), "4 positive integers"),
    (lambda: cifar_resnet("resnet9", (3, 32, 32), 10), "unknown CIFAR ResNet"),
    (lambda: cifar_resnet("resnet20", (3, 1024), 10), "image inputs"),
    (lambda: ModelSpec("resnet8x4", width=2).build(Shape()), "fixed widths"),
])
def test_bad_architectures_are_a_clear_value_error(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()
