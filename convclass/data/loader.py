"""Training batches from the decoded uint8 tensor: sliced in the training process, or, for per-image
augmentations (RandAugment, TrivialAugment, affine, colour), augmented in DataLoader worker processes while the
model trains on the previous batch.

Batch-level augmentations (flip-crop, alt-flip-translate) are a few tensor ops per batch and stay in the
training process: handing their batches to workers would only add copies.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from .augment import Augmentation, PerImage, Rng, draw_seed

__all__ = ["auto_workers", "batch_stream"]


class _SeededImages(Dataset):
    """Items are (seed, index) pairs: image `index` of x through the per-image transform under `seed`."""

    def __init__(self, x: torch.Tensor, augment: PerImage):
        self.x, self.augment = x, augment

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        seed, i = item
        return self.augment.one(self.x[i], seed)  # a worker process owns its global generator


def auto_workers(augment: Augmentation | None, workers: int | None, cores: int | None = None) -> int:
    """Worker processes for this run: `workers` when given; else, for a per-image augmentation, one per core
    beyond the two the training step keeps busy (at most 4), so a 2-core machine augments in-process."""
    if not isinstance(augment, PerImage):
        return 0
    if workers is not None:
        return int(workers)
    cores = cores or os.cpu_count() or 1
    return max(0, min(4, cores - 2))


def batch_stream(x: torch.Tensor, batches: list[torch.Tensor], augment: Augmentation | None, epoch: int,
                 workers: int, generator: Rng = None) -> Iterator[torch.Tensor]:
    """uint8 (B, C, H, W) batches of x, augmented, in the order of `batches` (index tensors into x); the one way
    the training loop gets its images.

    Batch augmentations draw from `generator` as each batch is made, in step with the loop's other draws from it
    (mixup, cutmix). Per-image augmentations may run ahead in `workers` processes, so they draw from a stream of
    their own, seeded from `generator` when this stream starts: their images depend on the generator's state
    then, not on the worker count. `generator=None` (deprecated) draws from torch's global generator."""
    if isinstance(augment, PerImage):
        generator = torch.Generator().manual_seed(draw_seed(generator))
        if workers > 0:
            items = [list(zip(augment.seeds(len(idx), generator), idx.tolist())) for idx in batches]
            # The loader's own generator only seeds the workers' global state, which `one` reseeds per image.
            yield from DataLoader(_SeededImages(x, augment), batch_sampler=items, num_workers=workers,
                                  collate_fn=torch.stack, prefetch_factor=2, generator=torch.Generator())
            return
    for idx in batches:
        yield x[idx] if augment is None else augment(x[idx], idx, epoch, generator)
