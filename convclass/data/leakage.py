"""Near-copies of test images in the training split: the cheap check `train` runs when it carves its own test split.

A folder of near-identical runs (video frames, bursts, one object shot many times) split image by image puts
copies of most test images into training, and the carved test score comes out optimistic (99.6 % carved against
96.6 % on the official test set, in one case). `inspect` finds such pairs from the files; this finds them from the
decoded uint8 images at a fraction of the cost: a 64-bit difference hash of a strided grey copy, candidates from
hashes within MAX_BITS bits (multi-index hashing: hashes that close agree exactly on one of MAX_BITS + 1 chunks),
confirmed, as in inspect, by a correlation of 16x16 grey copies >= MIN_CORRELATION (a hash alone pairs
look-alikes in 8x8 digits). Bounded: at most MAX_TEST test and MAX_TRAIN training images, for at most BUDGET_S.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .groups import relative_name

__all__ = ["Leak", "find_leaks", "leak_warning"]

MAX_BITS = 4             # of 64: a frame and the next stay within it; unrelated images differ in ~32
MIN_CORRELATION = 0.985  # inspection/duplicates.py's: a JPEG re-encode or one-pixel resize keeps >= 0.99
MAX_TEST = 20_000        # test images looked at (a seeded sample beyond); the count is scaled up to the split
MAX_TRAIN = 200_000      # training images hashed (a seeded sample beyond), ~1 s
BUDGET_S = 5.0           # hashing stops here, whatever is hashed is searched
MAX_PER_BUCKET = 16      # training candidates per test image and chunk: a bucket of blank images stays cheap
_SIDE = 32               # the strided copy hashed: at most ~63 x 63 pixels read per image, whatever its size
_SMALL = 16
_CHUNK = 2048


@dataclass
class Leak:
    count: int            # test images with a near-copy in training (scaled up when the test split was sampled)
    example: tuple[int, int] | None  # (test index, training index) of one pair
    sampled: bool         # not every image was looked at: count is an estimate


def _fingerprints(x: torch.Tensor, idx: np.ndarray, deadline: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(64-bit dHashes (n,) uint64, unit-norm centred 16x16 grey copies (n, 256) float32, n) of x[idx], in order,
    stopping at `deadline`. x: (N, C, H, W) uint8."""
    hashes, smalls = [], []
    weights = torch.tensor(1 << np.arange(63, -1, -1, dtype=np.uint64).astype(np.int64), dtype=torch.int64)
    step = max(1, min(x.shape[-2:]) // _SIDE)  # strided before the gather: only those pixels are copied
    for i in range(0, len(idx), _CHUNK):
        if i and time.monotonic() > deadline:
            break
        grey = x[:, :, ::step, ::step][torch.from_numpy(idx[i:i + _CHUNK])].float().mean(1, keepdim=True)  # (B,1,h,w)
        d = F.adaptive_avg_pool2d(grey, (8, 9)).flatten(1, 2)              # (B, 8, 9)
        bits = (d[:, :, 1:] > d[:, :, :-1]).flatten(1).long()              # (B, 64)
        hashes.append((bits * weights).sum(1).numpy().view(np.uint64))   # wraps into the sign bit: the 64 bits
        s = F.adaptive_avg_pool2d(grey, (_SMALL, _SMALL)).flatten(1)       # (B, 256)
        s = s - s.mean(1, keepdim=True)
        smalls.append(F.normalize(s, dim=1).numpy())
    if not hashes:
        return np.zeros(0, np.uint64), np.zeros((0, _SMALL * _SMALL), np.float32), 0
    h = np.concatenate(hashes)
    return h, np.concatenate(smalls), len(h)


def _candidates(test_h: np.ndarray, train_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) position pairs whose hashes are within MAX_BITS bits, at most MAX_PER_BUCKET per chunk."""
    bounds = np.linspace(0, 64, MAX_BITS + 2).astype(int)
    ti, tj = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        a, b = (test_h >> np.uint64(lo)) & mask, (train_h >> np.uint64(lo)) & mask
        order = np.argsort(b, kind="stable")
        first = np.searchsorted(b[order], a, "left")
        n = np.minimum(np.searchsorted(b[order], a, "right") - first, MAX_PER_BUCKET)
        rows = np.repeat(np.arange(len(a)), n)
        offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # 0 .. n_i - 1 within each test image
        ti.append(rows)
        tj.append(order[np.repeat(first, n) + offsets])
    i, j = np.concatenate(ti), np.concatenate(tj)
    close = np.bitwise_count(test_h[i] ^ train_h[j]) <= MAX_BITS
    return i[close], j[close]


def find_leaks(train: torch.Tensor, test: torch.Tensor, seed: int = 0) -> Leak:
    """How many `test` images (N, C, H, W) uint8 have a near-copy in `train`, with one example pair."""
    rng = np.random.default_rng(seed)
    pick_test = np.sort(rng.permutation(len(test))[:MAX_TEST])
    pick_train = rng.permutation(len(train))[:MAX_TRAIN]  # hashed in random order: a cut-off leaves a sample
    deadline = time.monotonic() + BUDGET_S
    test_h, test_s, _ = _fingerprints(test, pick_test, float("inf"))
    train_h, train_s, done = _fingerprints(train, pick_train, deadline)
    sampled = len(pick_test) < len(test) or done < len(train)
    if not len(test_h) or not done:
        return Leak(0, None, sampled)
    i, j = _candidates(test_h, train_h)
    corr = np.concatenate([np.einsum("pk,pk->p", test_s[i[k:k + _CHUNK * 32]], train_s[j[k:k + _CHUNK * 32]])
                           for k in range(0, len(i), _CHUNK * 32)] or [np.zeros(0)])  # ~130 MB of copies at most
    i, j = i[corr >= MIN_CORRELATION], j[corr >= MIN_CORRELATION]
    hit = np.unique(i)
    count = int(round(len(hit) * len(test) / len(pick_test)))
    example = (int(pick_test[i[0]]), int(pick_train[j[0]])) if len(i) else None
    return Leak(count, example, sampled)


def leak_warning(leak: Leak, test_paths: list[str] | None, train_paths: list[str] | None, root: str) -> str:
    """The one line `train` prints when its carved test split has near-copies in training."""
    i, j = leak.example or (0, 0)
    if test_paths is not None and train_paths is not None:
        a, b = (relative_name(p, root)[-80:] for p in (test_paths[i], train_paths[j]))
    else:
        a, b = f"test image #{i}", f"training image #{j}"
    n = f"{'about ' if leak.sampled else ''}{leak.count} test image{'s have' if leak.count != 1 else ' has'}"
    return (f"{n} a near-duplicate in the training split (e.g. {a} ~ {b}): the carved test accuracy will be "
            "optimistic; keep related images together with --group-by REGEX (or a group column in the CSV), or use "
            "an official test set")
