"""An airbench94-style CIFAR network (Keller Jordan, `KellerJordan/cifar10-airbench`, arXiv 2404.00498).

airbench94 reaches 94 % on CIFAR-10 in 3.3 s on an A100. Its network, kept here:
- a 2x2 convolution stem whose filters are the whitening (ZCA-like) basis of 2x2 training patches and their
  negatives, set from data once before training (`init_from_data`) and then frozen (only its bias learns);
- three blocks conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU (widths 64/256/256 by default);
- BatchNorm with the scale frozen at 1 (only the shift learns) and high momentum (0.6 in PyTorch's sense), with
  PyTorch's eps (airbench's 1e-12 diverges on MNIST: FrozenScaleBN);
- convolutions initialised as identity (dirac) on their first in_channels filters;
- a global max pool, a bias-free linear head and a fixed 1/9 output scale (the logit temperature).
airbench trains the BN shifts at 64x the weights' learning rate; PyTorch optimizers here get one rate for all
parameters, so the shift is stored as theta with shift = 8 * theta, which makes plain SGD move it 8^2 = 64x
faster (same result as a per-group rate, without a special optimizer).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.preprocess import Preprocess
from .base import Classifier
from .registry import register_model

__all__ = ["airbench", "AirNet", "whitening_filters"]

BIAS_SCALE = 8.0  # shift = 8 * theta: SGD then moves BN shifts 64x faster, as airbench's bias_scaler=64 does


class FrozenScaleBN(nn.BatchNorm2d):
    """BatchNorm with weight fixed at 1 and a learnable shift stored as theta (shift = BIAS_SCALE * theta)."""

    # eps 1e-5 (PyTorch's default), not airbench's 1e-12: on MNIST a channel of the last group can be exactly
    # constant over a batch (GELU's output of a channel negative everywhere is 0.0), and 1/sqrt(1e-12) = 1e6 then
    # multiplies its gradient, which the shifts' SGD steps turn into a diverged run (`--recipe fast` on the
    # MNIST folder: 16 % after an epoch). On CIFAR-10 no channel's batch variance fell below 0.08, where 1e-5
    # changes the normalisation by < 1e-4.
    def __init__(self, num_features: int, momentum: float = 0.6, eps: float = 1e-5):
        super().__init__(num_features, eps=eps, momentum=1 - momentum, affine=False)
        self.theta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + (BIAS_SCALE * self.theta)[None, :, None, None]


class DiracConv(nn.Conv2d):
    """3x3 'same' conv without bias whose first in_channels filters start as the identity (airbench)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, padding=1, bias=False)
        with torch.no_grad():
            nn.init.dirac_(self.weight[:min(c_in, c_out)])


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, pool: bool):
        super().__init__(DiracConv(c_in, c_out), nn.MaxPool2d(2) if pool else nn.Identity(), FrozenScaleBN(c_out),
                         nn.GELU(), DiracConv(c_out, c_out), FrozenScaleBN(c_out), nn.GELU())


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


def whitening_filters(x: torch.Tensor, eps: float = 5e-4) -> torch.Tensor:
    """Whitening basis of 2x2 patches of float images x (N, C, H, W): (2*4C, C, 2, 2), eigenvectors scaled by
    1/sqrt(eigenvalue) and their negatives (so a following GELU keeps both signs)."""
    c = x.shape[1]
    total, s1, s2 = 0, torch.zeros(4 * c, dtype=torch.float64), torch.zeros(4 * c, 4 * c, dtype=torch.float64)
    for i in range(0, len(x), 256):  # chunked: all 2x2 patches of 5,000 images at once would take ~1 GB
        p = x[i:i + 256].float().unfold(2, 2, 1).unfold(3, 2, 1)     # (n, C, H-1, W-1, 2, 2)
        p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4).double()  # (n*(H-1)*(W-1), 4C) ordered (C, kh, kw)
        total, s1, s2 = total + len(p), s1 + p.sum(0), s2 + p.T @ p
    mean = s1 / total
    cov = s2 / total - mean[:, None] * mean[None, :]
    eigval, eigvec = torch.linalg.eigh(cov)                          # ascending
    eigval, eigvec = eigval.flip(0), eigvec.T.flip(0)                # (4C,), (4C, 4C) largest first
    w = (eigvec / torch.sqrt(eigval.clamp(min=0) + eps)[:, None]).reshape(-1, c, 2, 2)
    return torch.cat([w, -w]).float()


class WhiteningConv(nn.Module):
    """2x2 conv without padding; its filters are a buffer (set from data, never trained), its bias learns."""

    def __init__(self, c_in: int, c_out: int, channels_last: bool = False):
        super().__init__()
        self.register_buffer("weight", torch.empty(c_out, c_in, 2, 2))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # a usable stem even without init_from_data
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, self.weight, self.bias)


class AirNet(Classifier):
    bias_lr_multiplier = BIAS_SCALE ** 2  # for optimizers that set per-group rates (training/muon.py)
    stem_bias = ("features.0.bias", 3)    # airbench trains the whitening bias for the first 3 epochs only

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, mean=None, std=None, max_images: int = 1000) -> None:
        """Set the stem to the whitening basis of training patches. x: uint8 (N, C, H, W); mean/std (C,) on
        the 0..1 scale, as the trainer normalises batches."""
        # An even stride over the set (splits are often sorted by class); (n, C, H, W) float. 1,000 CIFAR images
        # give ~1M 2x2 patches, plenty for a 12x12 covariance.
        x = x[::max(1, len(x) // max_images)][:max_images]
        c = x.shape[1]
        pre = Preprocess.for_batch(x, [0.0] * c if mean is None else mean, [1.0] * c if std is None else std)
        x = pre.to_input(x)  # without statistics: pixels on the 0..1 scale (mean 0, std 1)
        stem = self.features[0]
        stem.weight.copy_(whitening_filters(x).to(stem.weight))


@register_model(default_img_size=32)
def airbench(num_classes: int, in_chans: int = 3, img_size: int = 32, widths: str | list = "64,256,256",
             scale: float = 1 / 9, channels_last: bool = False, head_std: float | None = None):
    """airbench94's CIFAR net: whitened 2x2 stem, 3 conv groups (64/256/256), frozen-scale BN, GELU."""
    if isinstance(widths, str):
        widths = [int(w) for w in widths.split(",")]
    elif isinstance(widths, (int, float)):
        widths = [int(widths)] * 3
    stem_out = 2 * 4 * in_chans
    stem = WhiteningConv(in_chans, stem_out, channels_last)
    layers: list[nn.Module] = [stem, nn.GELU()]
    size, c_in = img_size - 1, stem_out
    for w in widths:
        layers.append(ConvGroup(c_in, w, pool=size >= 2))
        size, c_in = (size // 2 if size >= 2 else size), w
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    features = nn.Sequential(*layers)
    head = nn.Sequential(nn.Linear(c_in, num_classes, bias=False), Scale(scale))
    # airbench94_muon: head weights of std 1, output scaled by 1/width. A skeleton on the meta device (the shape
    # check of a loaded checkpoint) has no values to rescale, and std() there imports torch._dynamo: 2-3 s of CPU.
    if head_std and not head[0].weight.is_meta:
        with torch.no_grad():
            head[0].weight.mul_(head_std / head[0].weight.std())
    model = AirNet(features, head)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
