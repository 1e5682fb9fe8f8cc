"""The streaming path: images decoded per batch in DataLoader worker processes, for sets whose decoded form does
not fit the decode cache (decode.py), or when it is turned off (--cache off).

A streamed split keeps its files, not their pixels: `StreamImages` stands where the decoded (N, C, H, W) uint8
tensor would (shape, len, indexing decodes), so every consumer that slices a split still works, and the hot
loops (a training epoch, validation, the test) take their batches from workers instead:
- the training batches are epoch.py's seeded index batches; with rrc-flip the random-resized crop is drawn on the
  original photo as it is decoded, so no pixel is resized twice; other augmentations run on the decoded batch as
  they do on cached images;
- every random draw of an image depends only on (seed, epoch, image index), never on the worker that decoded it
  or on what ran before: a run resumed at an epoch replays it bit for bit;
- validation and the test decode each image the way the cache would (the same decode_file policy), so their
  pixels, and scores, are the cache's.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .archive import sources
from .augment import Augmentation, RandomResizedCropFlip, rrc_boxes
from .images import BrokenImage, decode_file, open_image, to_array

__all__ = ["StreamImages", "image_generator", "stream_workers", "train_batches", "eval_batches"]

MAX_WORKERS = 4  # decoding a 224-px JPEG takes ~5 ms: 4 processes keep ahead of any CPU training step


class StreamImages:
    """The images of a split as files, decoded on demand at `size` by the resize policy (data/preprocess.py):
    shape (N, C, size, size), uint8 once indexed. `sequential`: the files are WebDataset shard members, read in
    shard order when training (data/shards.py)."""

    dtype = torch.uint8

    def __init__(self, paths: list[str], size: int, channels: int, resize: str = "squash", crop_pct: float = 1.0,
                 sequential: bool = False):
        self.paths, self.size, self.channels = list(paths), int(size), int(channels)
        self.resize, self.crop_pct, self.sequential = resize, float(crop_pct), sequential

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self.paths), self.channels, self.size, self.size

    def __len__(self) -> int:
        return len(self.paths)

    def _indices(self, key) -> list[int]:
        if isinstance(key, slice):
            return list(range(len(self.paths)))[key]
        if isinstance(key, torch.Tensor | np.ndarray):
            return [int(i) for i in key.reshape(-1).tolist()]
        return [int(i) for i in key]

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, int | np.integer):
            return self.decode([int(key)])[0]
        return self.decode(self._indices(key))

    def take(self, key) -> StreamImages:
        """The images at `key` (a slice or indices), still undecoded: a rank's share of a split."""
        return StreamImages([self.paths[i] for i in self._indices(key)], self.size, self.channels, self.resize,
                            self.crop_pct, self.sequential)

    def decode(self, indices: list[int], crop: tuple[RandomResizedCropFlip, int, int, int] | None = None
               ) -> torch.Tensor:
        """(B, C, size, size) uint8 of images `indices`; `crop` (augmentation, size, seed, epoch): a random-resized
        crop and flip of each original photo at that size instead. A file that cannot be read becomes a black
        image, with a warning naming it (a streamed set is never read whole before training starts)."""
        size = self.size if crop is None else crop[1]
        out = torch.zeros((len(indices), self.channels, size, size), dtype=torch.uint8)
        bad: list[tuple[str, str]] = []
        for k, src in sources([self.paths[i] for i in indices], bad):  # archive members read in stream order
            try:
                a = (decode_file(src, self.size, self.channels, self.resize, self.crop_pct) if crop is None
                     else _crop_flip(src, self.channels, indices[k], *crop))
            except BrokenImage as e:
                bad.append((self.paths[indices[k]], str(e)))
                continue
            out[k] = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
        for path, why in bad:
            warnings.warn(f"skipped unreadable {path} ({why}): a black image took its place; remove the file",
                          stacklevel=2)
        return out


def image_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of image `index`'s random draws in `epoch`: a hash of the three, so nothing else (worker,
    batch, order) can change them."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 2)


def _crop_flip(src, channels: int, index: int, aug: RandomResizedCropFlip, size: int, seed: int,
               epoch: int) -> np.ndarray:
    """(size, size, C) uint8: rrc-flip's crop box (torchvision's draw) on the decoded photo, resized to size,
    flipped on a coin toss; the draws in RandomResizedCropFlip's order, from image_generator."""
    img = open_image(src)
    gen = image_generator(seed, epoch, index)
    top, left, h, w = (int(v) for v in rrc_boxes(1, img.height, img.width, gen, aug.scale, aug.ratio))
    a = to_array(img.crop((left, top, left + w, top + h)), size, channels)
    return a[:, ::-1] if bool(torch.rand(1, generator=gen) < 0.5) else a


class _Batches(Dataset):
    """An item is a whole batch (a list of image indices), decoded in the worker that draws it."""

    def __init__(self, images: StreamImages, crop: tuple | None = None):
        self.images, self.crop = images, crop

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices: list[int]) -> torch.Tensor:
        return self.images.decode(indices, self.crop)


def stream_workers(workers: int | None, cores: int | None = None) -> int:
    """Decoding processes: `workers` when given (0: decode in the training process), else one per core beyond
    the training step's, at least one, at most MAX_WORKERS."""
    if workers is not None:
        return int(workers)
    return max(1, min(MAX_WORKERS, (cores or os.cpu_count() or 1) - 1))


def _loader(images: StreamImages, batches: list[list[int]], workers: int, crop=None) -> Iterator[torch.Tensor]:
    if workers <= 0:
        return (images.decode(b, crop) for b in batches)
    # batch_size None: each sampled item is already a batch; workers take batches in turn, returned in order
    return iter(DataLoader(_Batches(images, crop), sampler=batches, batch_size=None, num_workers=workers,
                           prefetch_factor=2, generator=torch.Generator()))


def train_batches(images: StreamImages, batches: list[torch.Tensor], augment: Augmentation | None, epoch: int,
                  seed: int, workers: int | None, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """uint8 training batches in the order of `batches` (index tensors), decoded in workers: rrc-flip crops at
    decode time; any other augmentation runs here on the decoded batch, drawing from `generator` as it does on
    cached images."""
    lists = [b.tolist() for b in batches]
    if isinstance(augment, RandomResizedCropFlip):
        yield from _loader(images, lists, stream_workers(workers), (augment, augment.size(epoch), seed, epoch))
        return
    for idx, xb in zip(batches, _loader(images, lists, stream_workers(workers))):
        yield xb if augment is None else augment(xb, idx, epoch, generator)


def eval_batches(images: StreamImages, batch_size: int, workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Iterator[torch.Tensor]:
    """uint8 batches of every image in order, as the cache would hold them (validation, the test)."""
    from ..progress import chunks
    starts = list(range(0, len(images), batch_size))
    lists = [list(range(s, min(s + batch_size, len(images)))) for s in starts]
    stream = _loader(images, lists, stream_workers(workers))
    for _ in chunks(len(images), batch_size, progress):
        yield next(stream)
