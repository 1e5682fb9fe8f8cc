"""The small CNNs this field starts from (Keras-tutorial style) and the fully connected baseline."""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import Classifier
from .registry import register_model

__all__ = ["cnn3", "cnn5", "cnn6", "shallow", "mlp"]

MAX_HEAD_GRID = 4  # feature maps larger than 4x4 are average-pooled to 4x4 before the dense head


def _flat_head(features: nn.Module, in_chans: int, img_size: int, hidden: list[int], num_classes: int,
               dropout: float, bn: bool = False) -> nn.Sequential:
    # Probe the feature shape in eval mode: BatchNorm cannot train on one 1x1 map (cnn5 on 8x8 digits).
    was_training = features.training
    features.eval()
    with torch.no_grad():
        c, h, w = features(torch.zeros(1, in_chans, img_size, img_size)).shape[1:]
    features.train(was_training)
    layers: list[nn.Module] = []
    if h > MAX_HEAD_GRID or w > MAX_HEAD_GRID:
        layers.append(nn.AdaptiveAvgPool2d(MAX_HEAD_GRID))
        h = w = MAX_HEAD_GRID
    layers.append(nn.Flatten())
    n = c * h * w
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


def _w(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


@register_model(default_img_size=32)
def cnn3(num_classes: int, in_chans: int = 3, img_size: int = 32, width: float = 1.0, dropout: float = 0.2):
    """Three conv-BN-pool blocks (32, 64, 128), dense 256 and 128 with BN and dropout."""
    layers, size, c_in = [], img_size, in_chans
    for c in (32, 64, 128):
        pool, size = _pool_if_room(size)
        layers += [nn.Conv2d(c_in, _w(c, width), 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(_w(c, width)),
                   pool]
        c_in = _w(c, width)
    features = nn.Sequential(*layers)
    return Classifier(features, _flat_head(features, in_chans, img_size, [_w(256, width), _w(128, width)],
                                           num_classes, dropout, bn=True))


@register_model(default_img_size=32)
def cnn5(num_classes: int, in_chans: int = 3, img_size: int = 32, width: float = 1.0, dropout: float = 0.6):
    """Five conv-BN-ReLU-pool blocks (32 to 512 filters), linear 512, dropout 0.6."""
    layers, size, c_in = [], img_size, in_chans
    for c in (32, 64, 128, 256, 512):
        pool, size = _pool_if_room(size)
        layers += [nn.Conv2d(c_in, _w(c, width), 3, padding=1), nn.BatchNorm2d(_w(c, width)), nn.ReLU(inplace=True),
                   pool]
        c_in = _w(c, width)
    features = nn.Sequential(*layers)
    return Classifier(features, _flat_head(features, in_chans, img_size, [_w(512, width)], num_classes, dropout))


@register_model(default_img_size=32)
def cnn6(num_classes: int, in_chans: int = 3, img_size: int = 32, width: float = 1.0, dropout: float = 0.2):
    """Six 3x3 conv layers in three pairs (32, 64, 128) with BN, pooling and growing dropout."""
    layers, size, c_in = [], img_size, in_chans
    for i, c in enumerate((32, 64, 128)):
        c = _w(c, width)
        pool, size = _pool_if_room(size)
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   pool, nn.Dropout(dropout + 0.1 * i)]
        c_in = c
    features = nn.Sequential(*layers)
    return Classifier(features, _flat_head(features, in_chans, img_size, [], num_classes, 0.0))


@register_model(default_img_size=32)
def shallow(num_classes: int, in_chans: int = 3, img_size: int = 32, filters: int = 8):
    """A single conv layer of 8 kernels, pooled, then linear: the smallest CNN that beats an MLP."""
    pool, _ = _pool_if_room(img_size)
    features = nn.Sequential(nn.Conv2d(in_chans, filters, 3, padding=1), nn.ReLU(inplace=True), pool)
    return Classifier(features, _flat_head(features, in_chans, img_size, [], num_classes, 0.0))


@register_model(default_img_size=32)
def mlp(num_classes: int, in_chans: int = 3, img_size: int = 32, hidden: int = 512, dropout: float = 0.2):
    """The fully connected baseline: flatten, two hidden layers (512, 256), dropout."""
    n = in_chans * img_size * img_size
    features = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True), nn.Dropout(dropout))
    return Classifier(features, nn.Sequential(nn.Linear(hidden // 2, num_classes)))
