"""Training batches from the decoded uint8 tensor: sliced in the training process, or, for per-image
augmentations (RandAugment, TrivialAugment, affine, colour), augmented in DataLoader worker processes while the
model trains on the previous batch.

Batch-level augmentations (flip-crop, alt-flip-translate) are a few tensor ops per batch and stay in the
training process: handing their batches to workers would only add copies.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["auto_workers", "batch_stream"]


class _AugmentedImages(Dataset):
    def __init__(self, x: torch.Tensor, tf: Callable[[torch.Tensor], torch.Tensor]):
        self.x, self.tf = x, tf

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tf(self.x[i])


def auto_workers(augment, workers: int | None, cores: int | None = None) -> int:
    """Worker processes for this run: `workers` when given; else, for a per-image augmentation, one per core
    beyond the two the training step keeps busy (at most 4), so a 2-core machine augments in-process."""
    if getattr(augment, "per_image_tf", None) is None:
        return 0
    if workers is not None:
        return int(workers)
    cores = cores or os.cpu_count() or 1
    return max(0, min(4, cores - 2))


def batch_stream(x: torch.Tensor, batches: list[torch.Tensor], augment, epoch: int, workers: int
                 ) -> Iterator[torch.Tensor]:
    """uint8 (B, C, H, W) batches, augmented, in the order of `batches` (index tensors into x).

    With workers the per-image transforms draw from each worker's generator, which DataLoader seeds from
    torch's global generator when the epoch starts: the trainer seeds that per epoch, so a run (and a resumed
    run) with the same worker count sees the same images."""
    tf = getattr(augment, "per_image_tf", None)
    if workers > 0 and tf is not None:
        loader = DataLoader(_AugmentedImages(x, tf), batch_sampler=[b.tolist() for b in batches],
                            num_workers=workers, collate_fn=torch.stack, prefetch_factor=2)
        yield from loader
        return
    per_index = getattr(augment, "per_index", False)  # e.g. alternating flips need the image and the epoch
    for idx in batches:
        xb = x[idx]
        if augment is not None:
            xb = augment(xb, idx, epoch) if per_index else augment(xb)
        yield xb
