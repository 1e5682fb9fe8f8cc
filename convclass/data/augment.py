"""Training augmentation on uint8 batches (B, C, H, W): batch tensor ops where possible, torchvision v2 otherwise.

One contract: every augmentation is an `Augmentation`, called as `aug(x, idx, epoch, generator)` with a uint8
batch x (B, C, H, W), its dataset indices idx (B,) and the epoch, and returns a uint8 batch of the same shape
(rrc-flip alone returns its epoch's output size: it crops the stored image and resizes the crop to the size trained at).
Every random choice is drawn from `generator`, so the same generator state gives the same images (a resumed run
replays the epoch it was cut in) and the augmentation shifts nothing else that draws from torch's global
generator (dropout, DataLoader seeds).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from ..errors import ConvclassError
from .preprocess import normalize  # noqa: F401  (kept here for callers of data.augment.normalize)

__all__ = ["AUGMENTATIONS", "AlternatingFlipTranslate", "Augmentation", "FlipCrop", "PerImage",
           "RandomResizedCropFlip", "batch_crop", "batch_flip", "build_augment", "draw_seed", "mix_batch",
           "normalize", "progressive_sizes"]

AUGMENTATIONS = ("none", "flip-crop", "alt-flip-translate", "shift-rotate", "color", "randaugment", "trivialaugment",
                 "rrc-flip")

Rng = torch.Generator | None  # None: torch's global generator (deprecated: for call sites not yet passing one)


def draw_seed(generator: Rng) -> int:
    """One seed for a derived stream, drawn from `generator`."""
    return int(torch.randint(0, 2**62, (), generator=generator))


def batch_flip(x: torch.Tensor, generator: Rng = None) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Positions i in [-(n-1), 2(n-1)] folded into [0, n) as reflect padding does (the edge is not repeated)."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def batch_crop(x: torch.Tensor, pad: int, generator: Rng = None) -> torch.Tensor:
    """Random crop after reflect padding (a random shift of up to `pad` pixels): each image's rows, then columns,
    gathered from their reflected positions, without building the padded batch (a quarter of the CPU time of one
    copy per offset: 128 CIFAR images 14 -> 3 ms, 2000 images 78 -> 36 ms)."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = _reflect(dy[:, None] - pad + torch.arange(h), h).to(x.device)  # (b, h): source row of each output row
    cols = _reflect(dx[:, None] - pad + torch.arange(w), w).to(x.device)  # (b, w)
    x = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    return x.gather(3, cols[:, None, None, :].expand(b, c, h, w))


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


# rrc-flip: torchvision's RandomResizedCrop draw. Its ImageNet default area scale (0.08, 1) is for training from
# scratch for 90+ epochs; a fine-tune of a few epochs on a few thousand photos loses more to crops of 8 % of the
# image than it gains (fastai's fine-tuning examples use 0.35, timm's fine-tune configs 0.08-0.25); docs/finetune.md
# has the measurement behind 0.25.
RRC_SCALE = (0.25, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
RRC_ATTEMPTS = 10           # torchvision's: draws until a crop fits, then the centre crop
# Progressive resizing (fastai's, timm's): the first all-layer epochs at smaller sizes cost (size / final)^2 of a
# full-size one. fastai starts from scratch at about half size; a short fine-tune of ImageNet weights loses to it:
# on 600 clothing photos (4 epochs, 128 px) a start at 0.6x cost 11 test points, at 0.75x 2.4 (docs/finetune.md).
# 0.75 x 224 = 160, 192, 224: the all-layer stage of the finetune recipe at 3/4 of its full-size cost. Sizes are
# multiples of 32, the stride of ResNets and EfficientNets, so no feature map is cut by an odd division.
PROGRESSIVE_START = 0.75
SIZE_STEP = 32


def progressive_sizes(size: int, epochs: int, first: int = 0) -> list[int]:
    """The training size of each epoch: `size` for the first `first` (a frozen stage, trained at the size it is
    evaluated at), then rising from about PROGRESSIVE_START x size to `size`; the last third of the epochs (at
    least one) at `size`."""
    n = max(0, epochs - first)
    full = max(1, -(-n // 3))
    ramp = n - full
    low = max(SIZE_STEP, round(PROGRESSIVE_START * size / SIZE_STEP) * SIZE_STEP)
    if ramp <= 0 or low >= size:
        return [size] * max(epochs, 1)
    rising = [min(size, round((low + (size - low) * k / ramp) / SIZE_STEP) * SIZE_STEP) for k in range(ramp)]
    return [size] * min(first, epochs) + rising + [size] * full


def rrc_boxes(n: int, h: int, w: int, generator: Rng = None, scale=RRC_SCALE, ratio=RRC_RATIO
              ) -> tuple[torch.Tensor, ...]:
    """(top, left, height, width), each (n,) int64: torchvision's RandomResizedCrop.get_params for n images at
    once. Every call draws the same amount from `generator`, whatever the crops, so a batch's draws never shift
    the next batch's."""
    area = torch.empty(n, RRC_ATTEMPTS).uniform_(scale[0], scale[1], generator=generator) * (h * w)
    aspect = torch.empty(n, RRC_ATTEMPTS).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    cw, ch = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = fits.int().argmax(1, keepdim=True)  # the first attempt that fits, as torchvision's loop takes
    cw, ch = cw.gather(1, first)[:, 0].long(), ch.gather(1, first)[:, 0].long()
    # none fits: torchvision's fallback, the largest centre crop within the ratio range
    fw = min(w, round(h * ratio[1])) if w / h > ratio[1] else w
    fh = min(h, round(w / ratio[0])) if w / h < ratio[0] else h
    none = ~fits.any(1)
    cw, ch = cw.masked_fill(none, fw), ch.masked_fill(none, fh)
    top = (torch.rand(n, generator=generator) * (h - ch + 1)).long().clamp(max=h - ch)
    left = (torch.rand(n, generator=generator) * (w - cw + 1)).long().clamp(max=w - cw)
    top, left = torch.where(none, (h - ch) // 2, top), torch.where(none, (w - cw) // 2, left)
    return top, left, ch, cw


def _resize(crop: torch.Tensor, size: int) -> torch.Tensor:
    """(1, C, h, w) uint8 -> (1, C, size, size) uint8, bilinear, antialiased when shrinking."""
    if crop.device.type == "cpu":  # torch's uint8 kernel (torchvision's Resize): ~1.8x the float path, within 1 level
        return F.interpolate(crop.contiguous(memory_format=torch.channels_last), size=(size, size),
                             mode="bilinear", align_corners=False, antialias=True)
    out = F.interpolate(crop.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class RandomResizedCropFlip(Augmentation):
    """Per image a random-resized crop (RRC_SCALE of the area, aspect RRC_RATIO) of the stored image, resized to
    the epoch's size (progressive_sizes), then a random horizontal flip: the timm/torchvision training transform
    for ImageNet-style weights, on the uint8 batch. Measured at 256 -> 224, batch 32, one thread: ~100 ms, about
    5 % of an EfficientNet-Lite0 training step (docs/finetune.md)."""

    def __init__(self, sizes: list[int], log=None, scale=RRC_SCALE, ratio=RRC_RATIO):
        self.sizes, self.log, self._shown = list(sizes), log, None
        self.scale, self.ratio = scale, ratio

    def size(self, epoch: int) -> int:
        return self.sizes[min(epoch, len(self.sizes) - 1)]

    def __call__(self, x, idx, epoch, generator=None):
        size = self.size(epoch)
        if self.log is not None and size != self._shown and len(set(self.sizes)) > 1:
            self.log(f"epoch {epoch + 1}: training at {size}x{size} px (progressive resizing up to "
                     f"{self.sizes[-1]} px)")
        self._shown = size
        boxes = rrc_boxes(len(x), x.shape[2], x.shape[3], generator, self.scale, self.ratio)
        top, left, h, w = (v.tolist() for v in boxes)
        flip = (torch.rand(len(x), generator=generator) < 0.5).tolist()
        out = torch.empty((len(x), x.shape[1], size, size), dtype=x.dtype, device=x.device)
        for k in range(len(x)):  # one crop size per image: a loop of uint8 resizes beats padding to one size
            img = _resize(x[k:k + 1, :, top[k]:top[k] + h[k], left[k]:left[k] + w[k]], size)
            out[k] = img[0].flip(-1) if flip[k] else img[0]
        return out


def build_augment(name: str, img_size: int, channels: int, *, sizes: list[int] | None = None,
                  log=None) -> Augmentation | None:
    """The augmentation called `name` for images stored at img_size x img_size, or None for "none". rrc-flip
    trains at sizes[epoch] (the last for later epochs; default img_size) and says so through `log`."""
    if name not in AUGMENTATIONS:
        raise ConvclassError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
    if name == "none":
        return None
    if name == "rrc-flip":
        return RandomResizedCropFlip(sizes or [img_size], log=log)
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
    """Mixup or CutMix (one of them per batch, chosen at random when both are on); returns soft targets. `y`:
    class indices, or multi-label 0/1 rows (B, K), mixed as they are."""
    target = y.float() if y.dim() == 2 else F.one_hot(y, num_classes).float()
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
