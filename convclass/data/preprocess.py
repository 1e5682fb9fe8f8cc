"""How images become model input, in one object: size, channels, mean, std and resize policy.

Training, validation, prediction, explanation, serving and the exported runtimes all turn uint8 images into
model input through `Preprocess`, so the arithmetic exists once:
    input = (pixels / 255 - mean) / std, float32 (N, C, H, W), mean and std per channel on the 0..1 scale.
Checkpoints store it as their "preprocess" entry (`to_dict`) and exported files as fields of their metadata;
both are read back through `from_dict`, which checks every field (nothing in a model file is trusted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import checks
from ..errors import ConvclassError

__all__ = ["Preprocess", "RESIZE_POLICIES", "CROP_PCT_MIN", "check_policy", "normalize"]

# squash: the whole image scaled to img_size x img_size (the aspect ratio is not kept), what training has always
# done; crop: the shorter side scaled to round(img_size / crop_pct), then the centre img_size x img_size, the
# timm/torchvision ImageNet evaluation (crop_pct 0.875 at 224 = Resize(256) + CenterCrop(224)).
RESIZE_POLICIES = ("squash", "crop")
CROP_PCT_MIN = 0.5  # a centre crop of half the shorter side at least: below that the photo's subject is cut away


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float (B, C, H, W); mean/std are float32 (C,) on the 0..1 scale."""
    return (x.float() / 255.0 - mean[:, None, None]) / std[:, None, None]


def _crop_pct_ok(resize: str, crop_pct: float) -> bool:
    return CROP_PCT_MIN <= crop_pct <= 1.0 if resize == "crop" else crop_pct == 1.0


def check_policy(resize: str, crop_pct: float) -> None:
    """A one-line ConvclassError for a resize policy that Preprocess would refuse (for prepare_data's callers)."""
    if resize not in RESIZE_POLICIES or not checks.is_num(crop_pct) or not _crop_pct_ok(resize, crop_pct):
        raise ConvclassError(f"resize {resize!r} with crop_pct {crop_pct!r}: resize must be one of "
                             f"{', '.join(RESIZE_POLICIES)} and crop_pct from {CROP_PCT_MIN} to 1 (1 unless resize "
                             "is crop)")


@dataclass(frozen=True)
class Preprocess:
    img_size: int                    # pixels per side of the model input
    channels: int                    # 1 (grey) or 3 (RGB)
    mean: tuple[float, ...]          # per channel, 0..1 scale
    std: tuple[float, ...]
    resize: str = "squash"           # one of RESIZE_POLICIES
    crop_pct: float = 1.0            # with resize "crop": the share of the scaled shorter side kept
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # device -> (mean, std)

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "crop_pct", float(self.crop_pct))
        if (not len(self.mean) == len(self.std) == self.channels or self.resize not in RESIZE_POLICIES
                or not _crop_pct_ok(self.resize, self.crop_pct)):
            raise ValueError(f"inconsistent {self!r}: one mean and std per channel, resize in {RESIZE_POLICIES}, "
                             f"crop_pct in [{CROP_PCT_MIN}, 1] and 1 unless resize is crop")

    @classmethod
    def for_batch(cls, x: torch.Tensor, mean, std) -> Preprocess:
        """The Preprocess of uint8 images x (N, C, H, W) for callers that hold only the statistics."""
        return cls(img_size=int(x.shape[-1]), channels=int(x.shape[1]), mean=mean, std=std)

    def to_input(self, x: torch.Tensor, device: torch.device | str | None = None,
                 non_blocking: bool = False) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32 model input (B, C, H, W), on `device` (default: where x is)."""
        if device is not None:
            x = x.to(device, non_blocking=non_blocking)
        stats = self._stats.get(x.device)
        if stats is None:  # built once per device: a per-batch host-to-GPU copy of 2 x C floats is a sync point
            stats = self._stats.setdefault(x.device, (torch.tensor(self.mean, device=x.device),
                                                      torch.tensor(self.std, device=x.device)))
        return normalize(x, *stats)

    def to_input_np(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) -> float32, the same numbers as `to_input` on the CPU (for ONNX Runtime)."""
        m = np.asarray(self.mean, np.float32)[:, None, None]
        s = np.asarray(self.std, np.float32)[:, None, None]
        return ((x.astype(np.float32) / np.float32(255.0) - m) / s).astype(np.float32)

    def decode_files(self, paths: list[str]) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
        """uint8 (N, C, H, W) for the readable files, their paths, and (path, reason) for the rest."""
        from .images import BrokenImage, decode_file
        arrays, ok, bad = [], [], []
        for p in paths:
            try:
                arrays.append(decode_file(p, self.img_size, self.channels, self.resize, self.crop_pct))
                ok.append(p)
            except BrokenImage as e:
                bad.append((p, str(e)))
        if not arrays:
            return torch.zeros(0, self.channels, self.img_size, self.img_size, dtype=torch.uint8), ok, bad
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), ok, bad

    def to_dict(self) -> dict:
        """Plain data for a checkpoint's "preprocess" entry (loaded back with weights_only=True)."""
        return {"img_size": self.img_size, "channels": self.channels, "mean": list(self.mean), "std": list(self.std),
                "resize": self.resize, "crop_pct": self.crop_pct}

    @classmethod
    def checked(cls, d: dict) -> Preprocess:
        """From untrusted fields (a checkpoint, an export's metadata); raises checks.Invalid for the first bad one."""
        channels = d["channels"]
        checks.need(channels in (1, 3) and isinstance(channels, int) and not isinstance(channels, bool),
                    "channels", channels, "1 (grey) or 3 (RGB)")
        resize = d.get("resize", "squash")  # absent: files written before the policy was recorded all squash
        checks.need(resize in RESIZE_POLICIES, "resize", resize, f"one of {', '.join(RESIZE_POLICIES)}")
        crop_pct = d.get("crop_pct", 1.0)  # absent: written before crop_pct existed, when crops kept the whole side
        checks.need(checks.is_num(crop_pct) and _crop_pct_ok(resize, crop_pct), "crop_pct", crop_pct,
                    f"a number from {CROP_PCT_MIN} to 1 (1 unless resize is crop)")
        # pixels are scaled to 0..1 before normalizing, so their mean and std lie in 0..1 too
        return cls(img_size=checks.whole("img_size", d["img_size"], 1, checks.MAX_IMG_SIZE), channels=channels,
                   mean=checks.per_channel("mean", d["mean"], channels, 0.0, 1.0),
                   std=checks.per_channel("std", d["std"], channels, checks.STD_MIN, 1.0), resize=resize,
                   crop_pct=crop_pct)

    @classmethod
    def from_dict(cls, d, path: str | Path, hint: str, what: str = "preprocess") -> Preprocess:
        """`checked`, with a one-line ConvclassError naming `path`, the field and `hint` (what to do)."""
        missing = [k for k in ("img_size", "channels", "mean", "std") if k not in d] if isinstance(d, dict) else []
        if not isinstance(d, dict) or missing:
            lacks = f"lacks {', '.join(missing)}" if missing else f"is not a mapping ({type(d).__name__})"
            raise ConvclassError(f"refusing {path}: its {what} {lacks}; {hint}")
        try:
            return cls.checked(d)
        except checks.Invalid as e:
            raise checks.refusal(e, path, what, hint) from None
