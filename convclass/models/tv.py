"""torchvision's ResNets and ConvNeXts behind the common interface, with a stem adapted to small inputs."""
from __future__ import annotations

import torch.nn as nn

from ..errors import ConvclassError
from .base import Classifier
from .registry import register_model

__all__ = ["resnet18", "resnet50", "convnext_tiny", "convnext_base"]

SMALL_INPUT = 64  # at or below this many pixels the ImageNet stem would shrink the map to nothing


def _resnet(builder, num_classes: int, in_chans: int, img_size: int, **kw) -> Classifier:
    m = builder(num_classes=num_classes, **kw)
    if img_size <= SMALL_INPUT:
        # CIFAR-style stem: 3x3 stride 1 and no max-pool keeps 32x32 inputs at 4x4 after layer4.
        m.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    elif in_chans != 3:
        m.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    features = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
    return Classifier(features, nn.Sequential(m.avgpool, nn.Flatten(), m.fc))


def _convnext(builder, num_classes: int, in_chans: int, img_size: int, **kw) -> Classifier:
    m = builder(num_classes=num_classes, **kw)
    stem = m.features[0][0]
    if img_size < 8:
        raise ConvclassError(f"ConvNeXt halves the map 3 times after its stem; it needs --img-size 8 or more, "
                             f"not {img_size}")
    if img_size <= SMALL_INPUT or in_chans != 3:
        # Patchify 2x2 keeps a 2x2 map at the end for 32x32 inputs; 1x1 below 16 px so 8x8 digits end at 1x1.
        k = 4 if img_size > SMALL_INPUT else 2 if img_size >= 16 else 1
        m.features[0][0] = nn.Conv2d(in_chans, stem.out_channels, k, k)
    return Classifier(m.features, nn.Sequential(m.avgpool, m.classifier))


@register_model(default_img_size=224)
def resnet18(num_classes: int, in_chans: int = 3, img_size: int = 224):
    """torchvision ResNet-18 (11M), CIFAR stem at 64 px and below."""
    from torchvision.models import resnet18 as b
    return _resnet(b, num_classes, in_chans, img_size)


@register_model(default_img_size=224)
def resnet50(num_classes: int, in_chans: int = 3, img_size: int = 224):
    """torchvision ResNet-50 (24M), CIFAR stem at 64 px and below."""
    from torchvision.models import resnet50 as b
    return _resnet(b, num_classes, in_chans, img_size)


@register_model(default_img_size=224)
def convnext_tiny(num_classes: int, in_chans: int = 3, img_size: int = 224, drop_path: float = 0.1):
    """torchvision ConvNeXt-Tiny (28M), 2x2 patch stem at 64 px and below."""
    from torchvision.models import convnext_tiny as b
    return _convnext(b, num_classes, in_chans, img_size, stochastic_depth_prob=drop_path)


@register_model(default_img_size=224)
def convnext_base(num_classes: int, in_chans: int = 3, img_size: int = 224, drop_path: float = 0.2):
    """torchvision ConvNeXt-Base (88M), 2x2 patch stem at 64 px and below."""
    from torchvision.models import convnext_base as b
    return _convnext(b, num_classes, in_chans, img_size, stochastic_depth_prob=drop_path)
