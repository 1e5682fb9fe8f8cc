"""Does the exported model compute what the checkpoint computes? Sample images, compare, measure accuracy.

fp32 exports must match PyTorch on real images: the same top-1 class for every image and probabilities within
1e-4. int8 exports cannot match that closely, so their accuracy on the test split is measured instead.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..data.preprocess import Preprocess
from ..errors import ConvclassError

__all__ = ["Samples", "load_samples", "compare_probs", "check_parity", "accuracy", "MAX_PROB_DIFF"]

MAX_PROB_DIFF = 1e-4


@dataclass
class Samples:
    test_x: torch.Tensor            # uint8 (N, C, H, W)
    test_y: np.ndarray | None       # labels in the model's class order; None for synthetic images
    calib_x: torch.Tensor | None    # training images for int8 calibration
    source: str                     # where the images came from, for the report


def _synthetic(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images (blurred noise plus gradients) rather than white noise, closer to real inputs."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, channels, max(2, size // 4), max(2, size // 4), generator=g)
    x = torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def load_samples(ckpt: dict, pre: Preprocess, data: str | None, n_parity: int, n_calib: int, need_test: bool,
                 data_root: str | None = None) -> Samples:
    """Images from the run's own data (its test split and training images), decoded through the checkpoint's
    checked `pre` as evaluation decodes them, or synthetic ones with a warning."""
    cfg = ckpt.get("config") or {}
    data = data or cfg.get("data")
    if data:
        try:
            from ..data import prepare_data
            from ..data.sources import DataOptions
            pd = prepare_data(data, data_root=data_root or cfg.get("data_root", "~/.cache/convclass"),
                              img_size=pre.img_size, channels=pre.channels, resize=pre.resize,
                              crop_pct=pre.crop_pct,
                              val_split=cfg.get("val_split", 0.1), test_split=cfg.get("test_split", 0.2),
                              subset=cfg.get("subset"), seed=cfg.get("seed", 0), options=DataOptions.from_config(cfg))
            index = {c: i for i, c in enumerate(ckpt["classes"])}
            if all(c in index for c in pd.classes) and len(pd.test):
                remap = np.asarray([index[c] for c in pd.classes], dtype=np.int64)
                y = pd.test.y.numpy()
                test_x, test_y = pd.test.x, remap[y] if y.ndim == 1 else np.zeros_like(y)
                if y.ndim == 2:  # multi-label rows, each label moved to the model's column for it
                    test_y[:, remap] = y
                if not need_test:  # parity only: a spread of classes, not the whole split
                    take = np.random.default_rng(0).permutation(len(test_y))[:n_parity]
                    test_x, test_y = test_x[torch.from_numpy(np.sort(take))], test_y[np.sort(take)]
                pick = np.random.default_rng(1).permutation(len(pd.train))[:n_calib]
                return Samples(test_x, test_y, pd.train.x[torch.from_numpy(np.sort(pick))],
                               f"{pd.name} test split ({len(test_y)} images)")
            warnings.warn(f"{data}: classes differ from the model's; using synthetic images for the checks")
        except ConvclassError as e:
            warnings.warn(f"could not load the run's data ({e}); using synthetic images for the checks")
    else:
        warnings.warn("the checkpoint does not record its dataset and no --data was given; "
                      "using synthetic images for the checks")
    x = _synthetic(n_parity, pre.channels, pre.img_size)
    return Samples(x, None, None, f"{n_parity} synthetic images")


def compare_probs(ref: np.ndarray, got: np.ndarray) -> dict:
    """Agreement of two (N, K) probability arrays: top-1 matches and the largest absolute difference."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if ref.shape != got.shape:
        raise ConvclassError(f"exported model outputs shape {got.shape}, PyTorch {ref.shape}")
    same = ref.argmax(1) == got.argmax(1)
    return {"n": int(len(ref)), "top1_mismatches": int((~same).sum()),
            "max_abs_prob_diff": float(np.abs(ref - got).max()) if len(ref) else 0.0}


def check_parity(ref: np.ndarray, got: np.ndarray, what: str, tol: float = MAX_PROB_DIFF) -> dict:
    """compare_probs, raising a ConvclassError naming the numbers when the export does not match."""
    r = compare_probs(ref, got)
    if r["top1_mismatches"] or r["max_abs_prob_diff"] > tol:
        raise ConvclassError(f"{what} does not match PyTorch on {r['n']} images: {r['top1_mismatches']} top-1 "
                             f"mismatches, max |dprob| {r['max_abs_prob_diff']:.2e} (limit {tol:.0e}); the export "
                             "was removed. Report this with the model name")
    return r


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy; of multi-label rows, subset accuracy at 0.5 (every label right)."""
    if np.ndim(y) == 2:
        return float(((np.asarray(probs) >= 0.5) == (y > 0.5)).all(1).mean()) if len(y) else float("nan")
    return float((np.asarray(probs).argmax(1) == y).mean()) if len(y) else float("nan")
