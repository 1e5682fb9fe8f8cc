"""--val-max N: validate on a fixed stratified sample of at most N images of the validation split, so a big
validation folder costs seconds per epoch. The sample is drawn once from cfg.seed (every epoch, and a resumed
run, score the same images); the test split is always scored whole."""
from __future__ import annotations

import numpy as np
import torch

from ..config import TrainConfig
from ..data import PreparedData, TensorSplit
from ..data.multilabel import stratify_key

__all__ = ["cap_validation", "stratified_sample"]


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly min(n, len(labels)) labels, each class's count its share of n rounded by
    largest remainder (so the counts add up to n), the images of a class drawn at random."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / len(labels)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota, kind="stable")[:n - take.sum()]] += 1  # never above a class's count
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def cap_validation(data: PreparedData, cfg: TrainConfig, log) -> None:
    """Replace data.val by its sample when it holds more than cfg.val_max images."""
    val = data.val
    if cfg.val_max is None or len(val) <= cfg.val_max:
        return
    idx = stratified_sample(stratify_key(val.y.numpy()), cfg.val_max, cfg.seed)
    data.val = TensorSplit(val.x[torch.from_numpy(idx)], val.y[torch.from_numpy(idx)],
                           [val.paths[i] for i in idx] if val.paths is not None else None)
    log(f"note: validating on {len(idx)} of the {len(val)} validation images (--val-max {cfg.val_max}: a stratified "
        f"sample drawn with seed {cfg.seed}, the same every epoch); the test split is scored whole")
