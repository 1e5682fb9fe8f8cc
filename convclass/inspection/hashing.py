"""Image fingerprints: a content hash for exact copies and 64-bit perceptual hashes (pHash, dHash) for near copies.

pHash (after Zauner 2010, as in the `imagehash` package): grey, 32x32, 2-D DCT, keep the 8x8 lowest frequencies,
one bit per coefficient above their median. Re-encoding, a small resize or mild compression moves few bits;
unrelated images differ in about half of the 64.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["content_hash", "phash", "dhash", "hamming", "pairs_within"]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n, n): D @ x is the DCT of a length-n signal."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def _grey(img: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(img, np.ndarray):
        a = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
        img = Image.fromarray(np.ascontiguousarray(a))
    return img.convert("L")


def _bits_to_int(bits: np.ndarray) -> int:
    return int(np.packbits(bits.astype(np.uint8).ravel()).view(">u8")[0])


def phash(img: Image.Image | np.ndarray) -> int:
    """64-bit perceptual hash from the 8x8 low-frequency DCT coefficients of a 32x32 grey copy."""
    a = np.asarray(_grey(img).resize((32, 32), Image.LANCZOS), dtype=np.float64)
    d = _dct_matrix(32)
    low = (d @ a @ d.T)[:8, :8]
    return _bits_to_int(low > np.median(low))


def dhash(img: Image.Image | np.ndarray) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grey copy brighter than its right neighbour."""
    a = np.asarray(_grey(img).resize((9, 8), Image.LANCZOS), dtype=np.int16)
    return _bits_to_int(a[:, 1:] > a[:, :-1])


def hamming(a, b) -> np.ndarray:
    """Bits that differ between 64-bit hashes (scalars or arrays of uint64)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.unpackbits(np.atleast_1d(x).view(np.uint8).reshape(-1, 8), axis=1).sum(1).reshape(np.shape(x))


def pairs_within(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) with hamming(h_i, h_j) <= max_distance, without comparing every pair.

    Multi-index hashing: cut the 64 bits into max_distance + 1 chunks; two hashes within the distance agree
    exactly on at least one chunk (pigeonhole), so only hashes sharing a chunk value are compared.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty, empty
    chunks = max_distance + 1
    bounds = np.linspace(0, 64, chunks + 1).astype(int)
    cand = set()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (h >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            members = order[s:e]
            # blocks of rows keep memory bounded when many images share a chunk (e.g. blank images)
            for r in range(0, len(members) - 1, 64):
                rows = members[r:r + 64]
                d = hamming(h[rows][:, None], h[members][None, :])
                a, b = np.nonzero(d <= max_distance)
                keep = b > a + r
                i, j = rows[a[keep]], members[b[keep]]
                cand.update(zip(np.minimum(i, j).tolist(), np.maximum(i, j).tolist()))
    if not cand:
        return empty, empty, empty
    pairs = np.asarray(sorted(cand), dtype=np.int64)
    return pairs[:, 0], pairs[:, 1], hamming(h[pairs[:, 0]], h[pairs[:, 1]])
