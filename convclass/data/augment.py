"""Training augmentation on uint8 batches (B, C, H, W): batch tensor ops where possible, torchvision v2 otherwise.

One contract: every augmentation is an `Augmentation`, called as `aug(x, idx, epoch, generator)` with a uint8
batch x (B, C, H, W), its dataset indices idx (B,) and the epoch, and returns a uint8 batch of the same shape.
Every random choice is drawn from `generator`, so the same generator state gives the same images (a resumed run
replays the epoch it was cut in) and the augmentation shifts nothing else that draws from torch's global
generator (dropout, DataLoader seeds).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from ..errors import ConvclassError
from .preprocess import normalize  # noqa: F401  (kept here for callers of data.augment.normalize)

__all__ = ["AUGMENTATIONS", "AlternatingFlipTranslate", "Augmentation", "FlipCrop", "PerImage", "batch_crop",
           "batch_flip", "build_augment", "draw_seed", "mix_batch", "normalize"]

AUGMENTATIONS = ("none", "flip-crop", "alt-flip-translate", "shift-rotate", "color", "randaugment", "trivialaugment")

Rng = torch.Generator | None  # None: torch's global generator (deprecated: for call sites not yet passing one)


def draw_seed(generator: Rng) -> int:
    """One seed for a derived stream, drawn from `generator`."""
    return int(torch.randint(0, 2**62, (), generator=generator))


def batch_flip(x: torch.Tensor, generator: Rng = None) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def batch_crop(x: torch.Tensor, pad: int, generator: Rng = None) -> torch.Tensor:
    """Random crop after reflect padding (a random shift of up to `pad` pixels), grouped by offset for speed."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x.float() if x.dtype == torch.uint8 else x, (pad, pad, pad, pad), mode="reflect").to(x.dtype)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    out = torch.empty_like(x)
    for oy in dy.unique().tolist():
        for ox in dx.unique().tolist():
            sel = (dy == oy) & (dx == ox)
            if sel.any():
                out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
    return out


class Augmentation(ABC):
    """uint8 (B, C, H, W) -> uint8 (B, C, H, W); random choices drawn from `generator` only."""

    @abstractmethod
    def __call__(self, x: torch.Tensor, idx: torch.Tensor, epoch: int, generator: Rng = None) -> torch.Tensor: ...


class FlipCrop(Augmentation):
    """The CIFAR standard: a random shift of up to `pad` pixels (reflect padding), then random horizontal flips."""

    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, x, idx, epoch, generator=None):
        return batch_flip(batch_crop(x, self.pad, generator), generator)


class AlternatingFlipTranslate(Augmentation):
    """airbench's augmentation: a random translation of up to `pad` pixels (reflect padding) and *alternating*
    flips: each image is mirrored in every other epoch, half the images starting mirrored (a fixed hash of the
    image index picks which half). Over any two epochs every image is seen both ways, where random flips leave
    a quarter of them one way only; airbench reports it worth about as much as 10 % more epochs."""

    def __init__(self, pad: int = 2):
        self.pad = pad

    def __call__(self, x, idx, epoch, generator=None):
        x = batch_crop(x, self.pad, generator)
        start_mirrored = ((idx * 2654435761) >> 16) & 1  # Knuth's multiplicative hash: a fixed, even split
        mirror = (start_mirrored ^ (epoch % 2)).bool()
        return torch.where(mirror[:, None, None, None], x.flip(3), x)


class PerImage(Augmentation):
    """A torchvision v2 transform, applied image by image. torchvision draws from torch's global generator, so
    each image runs under its own seed: one seed drawn from `generator` per batch, plus the image's place in the
    batch, with the global state restored afterwards. An image's seed does not depend on the process that
    transforms it: data/loader.py hands (seed, index) pairs to DataLoader workers (`one`) and gets the images
    this process would have made."""

    def __init__(self, tf):
        self.tf = tf

    def seeds(self, n: int, generator: Rng) -> list[int]:
        base = draw_seed(generator)
        return [base + j for j in range(n)]

    def one(self, img: torch.Tensor, seed: int) -> torch.Tensor:
        """(C, H, W) uint8 under `seed`; reseeds the global generator (callers restore it, or own the process)."""
        torch.default_generator.manual_seed(seed)
        return self.tf(img)

    def __call__(self, x, idx, epoch, generator=None):
        seeds = self.seeds(len(x), generator)
        with torch.random.fork_rng(devices=[]):
            return torch.stack([self.one(img, s) for img, s in zip(x, seeds)])


def build_augment(name: str, img_size: int, channels: int) -> Augmentation | None:
    """The augmentation called `name` for images of img_size x img_size, or None for "none"."""
    if name not in AUGMENTATIONS:
        raise ConvclassError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
    if name == "none":
        return None
    if name == "flip-crop":
        return FlipCrop(pad=max(1, img_size // 8))  # 4 px at 32x32, the CIFAR standard
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
    return PerImage(tf)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup: float, cutmix: float,
              generator: Rng = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (one of them per batch, chosen at random when both are on); returns soft targets."""
    target = F.one_hot(y, num_classes).float()
    use_cut = cutmix > 0 and (mixup <= 0 or torch.rand((), generator=generator) < 0.5)
    alpha = float(cutmix if use_cut else mixup)
    # Beta(a, a) as the first coordinate of a Dirichlet(a, a) draw: what torch.distributions.Beta samples (bit
    # for bit; tests/test_augment.py checks), with a generator, which Beta.sample does not take.
    lam = float(torch._sample_dirichlet(torch.tensor([alpha, alpha]), generator=generator)[0])
    where = x.device if generator is None else generator.device  # a generator draws on its own device
    perm = torch.randperm(x.shape[0], generator=generator, device=where).to(x.device)
    if use_cut:
        h, w = x.shape[2:]
        ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(h, (), generator=generator)), int(torch.randint(w, (), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]
