"""The small CNNs this field starts from, in their published shapes, and the fully connected baseline.

Each classic net was published for one input side (`DESIGN_SIZE`) and its head flattens the whole feature map,
as the original does. Size guard: when an image side is more than GUARD_RATIO times the design side, the map is
average-pooled to the grid the design side gives before the flatten, so the dense head keeps its published size.
"""
from __future__ import annotations

import torch.nn as nn

from ..errors import ConvclassError
from .base import Classifier
from .registry import register_model

__all__ = ["cnn3", "cnn5", "cnn6", "shallow", "mlp"]

# The input side each original was built and published for: Keras MNIST (28), Keras CIFAR-10 (32), the PyTorch
# 5-block CNN on a 64x64 photo folder (64).
DESIGN_SIZE = {"shallow": 28, "cnn3": 32, "cnn6": 32, "cnn5": 64}
# Up to twice the design side the full map is flattened as published: the first dense layer grows at most 4x
# (cnn3 on 64-px Tiny-ImageNet: 8x8x128 -> 256, 2.1M weights). Beyond that it grows with the square of the side
# (shallow at 224 px: 222x222x8 = 394k inputs per class, cnn3: 25.7M weights) and is no longer the published
# model, so the map is pooled to the design grid instead.
GUARD_RATIO = 2


def _flat_head(arch: str, channels: int, img_size: int, grid, hidden: list[int], num_classes: int,
               dropout: float, bn: bool = False) -> nn.Sequential:
    """Flatten the full (channels, g, g) map, g = grid(img_size), then dense layers; pooled only past the guard."""
    g = grid(img_size)
    layers: list[nn.Module] = []
    if img_size > GUARD_RATIO * DESIGN_SIZE[arch]:
        g = grid(DESIGN_SIZE[arch])
        layers.append(nn.AdaptiveAvgPool2d(g))
    layers.append(nn.Flatten())
    n = channels * g * g
    for width in hidden:
        layers += [nn.Linear(n, width)] + ([nn.BatchNorm1d(width)] if bn else []) + [nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        n = width
    layers.append(nn.Linear(n, num_classes))
    return nn.Sequential(*layers)


def _pool_if_room(size: int) -> tuple[nn.Module, int]:
    """Halve the map while it is at least 2 pixels wide, so deep stacks still run on 8x8 digits."""
    return (nn.MaxPool2d(2), size // 2) if size >= 2 else (nn.Identity(), size)


def _pooled_grid(blocks: int):
    """The map side after `blocks` same-padded conv blocks, each ending in _pool_if_room."""
    def grid(size: int) -> int:
        for _ in range(blocks):
            size = _pool_if_room(size)[1]
        return size
    return grid


def _w(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


@register_model(default_img_size=32)
def cnn3(num_classes: int, in_chans: int = 3, img_size: int = 32, width: float = 1.0, dropout: float = 0.2):
    """Keras CIFAR-10 CNN: three conv-ReLU-BN-maxpool blocks (32, 64, 128), dense 256 and 128 with BN, dropout."""
    layers, size, c_in = [], img_size, in_chans
    for c in (32, 64, 128):
        pool, size = _pool_if_room(size)
        layers += [nn.Conv2d(c_in, _w(c, width), 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(_w(c, width)),
                   pool]
        c_in = _w(c, width)
    return Classifier(nn.Sequential(*layers), _flat_head("cnn3", c_in, img_size, _pooled_grid(3),
                                                         [_w(256, width), _w(128, width)], num_classes, dropout,
                                                         bn=True))


@register_model(default_img_size=32)
def cnn5(num_classes: int, in_chans: int = 3, img_size: int = 32, width: float = 1.0, dropout: float = 0.6):
    """PyTorch 5-block CNN: five conv-BN-ReLU-maxpool blocks (32 to 512 filters), linear 512, dropout 0.6."""
    layers, size, c_in = [], img_size, in_chans
    for c in (32, 64, 128, 256, 512):
        pool, size = _pool_if_room(size)
        layers += [nn.Conv2d(c_in, _w(c, width), 3, padding=1), nn.BatchNorm2d(_w(c, width)), nn.ReLU(inplace=True),
                   pool]
        c_in = _w(c, width)
    return Classifier(nn.Sequential(*layers), _flat_head("cnn5", c_in, img_size, _pooled_grid(5), [_w(512, width)],
                                                         num_classes, dropout))


@register_model(default_img_size=32)
def cnn6(num_classes: int, in_chans: int = 3, img_size: int = 32, width: float = 1.0, dropout: float = 0.2):
    """Keras CIFAR-10 6-conv CNN: three pairs of 3x3 convs (32, 64, 128) with BN, max-pool, growing dropout."""
    layers, size, c_in = [], img_size, in_chans
    for i, c in enumerate((32, 64, 128)):
        c = _w(c, width)
        pool, size = _pool_if_room(size)
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   pool, nn.Dropout(dropout + 0.1 * i)]
        c_in = c
    return Classifier(nn.Sequential(*layers), _flat_head("cnn6", c_in, img_size, _pooled_grid(3), [], num_classes,
                                                         0.0))


@register_model(default_img_size=32)
def shallow(num_classes: int, in_chans: int = 3, img_size: int = 32, filters: int = 8):
    """Keras MNIST single conv layer: 8 kernels of 3x3 (no padding), ReLU, flatten, dense output."""
    if img_size < 3:
        # Keras' Conv2D default is padding="valid": the 3x3 kernel needs 3 pixels (28 -> 26 on MNIST).
        raise ConvclassError(f"model shallow needs images of at least 3x3 pixels (got {img_size}); "
                             f"use --img-size 3 or more")
    features = nn.Sequential(nn.Conv2d(in_chans, filters, 3), nn.ReLU(inplace=True))
    return Classifier(features, _flat_head("shallow", filters, img_size, lambda s: s - 2, [], num_classes, 0.0))


@register_model(default_img_size=32)
def mlp(num_classes: int, in_chans: int = 3, img_size: int = 32, hidden: int = 512, dropout: float = 0.2):
    """The fully connected baseline: flatten, two hidden layers (512, 256), dropout."""
    n = in_chans * img_size * img_size
    features = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True), nn.Dropout(dropout))
    return Classifier(features, nn.Sequential(nn.Linear(hidden // 2, num_classes)))
