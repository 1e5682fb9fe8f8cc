"""Reading every image of a split once: content hash, perceptual hash, size, mode, readability, thumbnails."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..data.archive import sources
from ..data.images import BrokenImage, open_image
from ..data.multilabel import stratify_key
from ..safeio import Refused, read_regular
from ..data.sources import LabeledSet
from .hashing import content_hash, phash

__all__ = ["SplitScan", "scan_split", "THUMB"]

THUMB = 64          # pixels, longest side of the thumbnails kept for sample grids
SMALL = 16          # pixels, side of the grey copies compared pixel by pixel
_BLANK = np.zeros((SMALL, SMALL), np.uint8)
PARALLEL_MIN = 2000  # below this many files, starting workers costs more than it saves


@dataclass
class SplitScan:
    """One entry per image of the split, in its order; broken images have sha "" and phash 0."""
    labels: np.ndarray
    names: list[str]                 # file paths, or "#<index>" for in-memory arrays
    sha: list[str]
    phash: np.ndarray                # (N,) uint64
    small: np.ndarray                # (N, 16, 16) uint8 grey copies, to confirm near-duplicates pixel by pixel
    sizes: list[tuple[int, int]]     # (width, height) in pixels
    modes: list[str]
    broken: list[tuple[str, str]] = field(default_factory=list)
    thumbs: dict[int, list[np.ndarray]] = field(default_factory=dict)  # class -> a few (H, W[, C]) uint8

    @property
    def ok(self) -> np.ndarray:
        return np.asarray([bool(s) for s in self.sha])


def _small(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((SMALL, SMALL), Image.LANCZOS), dtype=np.uint8)


def _thumb(img: Image.Image) -> np.ndarray:
    img = img.convert("L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
    img.thumbnail((THUMB, THUMB))
    return np.asarray(img)


def _scan_file(src: str | bytes):
    """(sha, phash, size, mode, reason-if-broken) of one file (its path), or of an archive member (its bytes)."""
    try:
        # regular files only, bounded: a FIFO or /dev/zero is a broken file
        data = src if isinstance(src, bytes) else read_regular(src)
        img = open_image(data)
        return content_hash(data), phash(img), img.size, img.mode, _small(img), None
    except (BrokenImage, Refused) as e:
        return _broken(str(e))


def _broken(reason: str):
    return "", 0, (0, 0), "", _BLANK, reason


def _scan_chunk(paths: list[str]):
    out, bad = [None] * len(paths), []
    for i, src in sources(paths, bad):  # each archive read once, in its own order
        out[i] = _scan_file(src)
    reasons = dict(bad)
    return [r if r is not None else _broken(reasons.get(p, "unreadable")) for p, r in zip(paths, out)]


def _scan_files(paths: list[str]):
    if len(paths) < PARALLEL_MIN or (os.cpu_count() or 1) < 2:
        return _scan_chunk(paths)
    workers = min(8, os.cpu_count() or 1)
    size = max(200, len(paths) // (workers * 4))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    with ProcessPoolExecutor(workers) as ex:
        return [r for part in ex.map(_scan_chunk, chunks) for r in part]


def _scan_arrays(arrays: np.ndarray):
    out = []
    for a in arrays:  # (H, W, C) uint8
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        out.append((content_hash(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()), phash(img),
                    img.size, img.mode, _small(img), None))
    return out


def scan_split(s: LabeledSet, thumbs_per_class: int = 8) -> SplitScan:
    if s.arrays is not None:
        rows, names = _scan_arrays(s.arrays), [f"#{i}" for i in range(len(s))]
    else:
        names = list(s.paths or [])
        rows = _scan_files(names)
    thumbs: dict[int, list[np.ndarray]] = {}
    broken = []
    # a multi-label image's thumbnail goes with its rarest label
    for i, (name, label, r) in enumerate(zip(names, stratify_key(s.labels).tolist(), rows)):
        if r[5] is not None:
            broken.append((name, r[5]))
        elif len(thumbs.setdefault(label, [])) < thumbs_per_class:
            # thumbnails are made here, for a few images per class, so workers never ship pixels back
            src = s.arrays[i] if s.arrays is not None else None
            img = (Image.fromarray(src[..., 0] if src.shape[-1] == 1 else src) if src is not None
                   else open_image(name))
            thumbs[label].append(_thumb(img))
    return SplitScan(labels=np.asarray(s.labels, dtype=np.int64), names=names, sha=[r[0] for r in rows],
                     phash=np.asarray([r[1] for r in rows], dtype=np.uint64),
                     small=np.stack([r[4] for r in rows]) if rows else np.zeros((0, SMALL, SMALL), np.uint8),
                     sizes=[tuple(r[2]) for r in rows],
                     modes=[r[3] for r in rows], broken=broken, thumbs=thumbs)
