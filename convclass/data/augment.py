"""Training augmentation on uint8 batches (B, C, H, W): batch tensor ops where possible, torchvision v2 otherwise.

Randomness comes from torch's global generator, which the trainer reseeds every epoch: the same seed and epoch
give the same augmented batches, so a resumed run matches an uninterrupted one.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConvclassError
from .preprocess import normalize  # noqa: F401  (kept here for callers of data.augment.normalize)

__all__ = ["AUGMENTATIONS", "AlternatingFlipTranslate", "build_augment", "batch_flip", "batch_crop", "mix_batch",
           "normalize"]

AUGMENTATIONS = ("none", "flip-crop", "alt-flip-translate", "shift-rotate", "color", "randaugment", "trivialaugment")


def batch_flip(x: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = torch.rand(x.shape[0]) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def batch_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crop after reflect padding (a random shift of up to `pad` pixels), grouped by offset for speed."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x.float() if x.dtype == torch.uint8 else x, (pad, pad, pad, pad), mode="reflect").to(x.dtype)
    dy = torch.randint(0, 2 * pad + 1, (b,))
    dx = torch.randint(0, 2 * pad + 1, (b,))
    out = torch.empty_like(x)
    for oy in dy.unique().tolist():
        for ox in dx.unique().tolist():
            sel = (dy == oy) & (dx == ox)
            if sel.any():
                out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
    return out


class AlternatingFlipTranslate:
    """airbench's augmentation: a random translation of up to `pad` pixels (reflect padding) and *alternating*
    flips: each image is mirrored in every other epoch, half the images starting mirrored (a fixed hash of the
    image index picks which half). Over any two epochs every image is seen both ways, where random flips leave
    a quarter of them one way only; airbench reports it worth about as much as 10 % more epochs.

    Called with the batch's dataset indices and the epoch (`per_index`), unlike the plain augmentations."""

    per_index = True

    def __init__(self, pad: int = 2):
        self.pad = pad

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, epoch: int) -> torch.Tensor:
        x = batch_crop(x, self.pad)
        start_mirrored = ((idx * 2654435761) >> 16) & 1  # Knuth's multiplicative hash: a fixed, even split
        mirror = (start_mirrored ^ (epoch % 2)).bool()
        return torch.where(mirror[:, None, None, None], x.flip(3), x)


def _per_image(tf) -> Callable[[torch.Tensor], torch.Tensor]:
    def apply(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([tf(img) for img in x])
    apply.per_image_tf = tf  # data/loader.py can run it in DataLoader workers instead
    return apply


def build_augment(name: str, img_size: int, channels: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """uint8 (B, C, H, W) -> uint8 (B, C, H, W), or None for no augmentation."""
    if name not in AUGMENTATIONS:
        raise ConvclassError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
    if name == "none":
        return None
    if name == "flip-crop":
        pad = max(1, img_size // 8)  # 4 px at 32x32, the CIFAR standard
        return lambda x: batch_flip(batch_crop(x, pad))
    if name == "alt-flip-translate":
        return AlternatingFlipTranslate(pad=max(1, img_size // 16))  # 2 px at 32x32, airbench's translate
    from torchvision.transforms import v2
    erase = v2.RandomErasing(p=0.25, value=0)
    if name == "shift-rotate":
        tf = v2.Compose([v2.RandomAffine(degrees=15, translate=(0.1, 0.1)), v2.RandomHorizontalFlip()])
    elif name == "color":
        jitter = v2.ColorJitter(0.2, 0.2, 0.2 if channels == 3 else 0, 0.0)
        tf = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomRotation(10), jitter])
    elif name == "randaugment":
        tf = v2.Compose([v2.RandomHorizontalFlip(), v2.RandAugment(), erase])
    else:
        tf = v2.Compose([v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(), erase])
    return _per_image(tf)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup: float, cutmix: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (one of them per batch, chosen at random when both are on); returns soft targets."""
    target = F.one_hot(y, num_classes).float()
    use_cut = cutmix > 0 and (mixup <= 0 or torch.rand(()) < 0.5)
    alpha = cutmix if use_cut else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    if use_cut:
        h, w = x.shape[2:]
        ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]
