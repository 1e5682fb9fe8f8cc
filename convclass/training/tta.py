"""Test-time augmentation: logits averaged over a few deterministic views of each image (airbench's TTA).

- `flip`: the image and its mirror, averaged.
- `flip-translate`: airbench94's level 2: half weight on (image, mirror), half on the four views shifted by one
  pixel up-left and down-right (reflect padding), mirrored and not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.preprocess import Preprocess
from ..errors import ConvclassError
from ..precision import autocast

__all__ = ["TTA_MODES", "check_tta", "tta_logits"]

TTA_MODES = ("none", "flip", "flip-translate")


def check_tta(mode: str) -> None:
    if mode not in TTA_MODES:
        raise ConvclassError(f"--tta must be one of {', '.join(TTA_MODES)}, not {mode!r}")


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate float (B, C, H, W) by (dy, dx) pixels, filling from a reflection of the border."""
    h, w = x.shape[2:]
    if min(h, w) < 2:
        return x
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return p[:, :, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]


def _views_logits(model, xb: torch.Tensor, mode: str) -> torch.Tensor:
    both = lambda v: 0.5 * (model(v) + model(v.flip(3)))  # noqa: E731
    if mode == "flip":
        return both(xb)
    return 0.5 * both(xb) + 0.25 * (both(_shift(xb, -1, -1)) + both(_shift(xb, 1, 1)))


@torch.no_grad()
def tta_logits(model, x: torch.Tensor, mean, std, device: torch.device, batch_size: int = 256,
               mode: str = "flip", precision: str = "fp32") -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 logits (N, K) on the CPU, averaged over the views of `mode`, in eval mode,
    under the autocast of `precision` (resolved: fp32 | bf16 | fp16)."""
    check_tta(mode)
    from ..inference import predict_logits
    if mode == "none":
        return predict_logits(model, x, mean, std, device, batch_size, precision)
    model.eval()
    batch_size = min(batch_size, 256)  # each batch runs through up to 6 views: bounds peak activation memory
    pre = Preprocess.for_batch(x, mean, std)
    with autocast(precision, device):  # each view's logits cast to fp32 before they are averaged
        out = [_views_logits(lambda v: model(v).float(), pre.to_input(x[i:i + batch_size], device), mode).cpu()
               for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 0)
