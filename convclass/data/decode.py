"""Decoding a split once into a (N, C, H, W) uint8 array, in parallel, cached on disk keyed by the files.

The cache holds the array in the layout training reads, so a warm run maps it and copies nothing."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..errors import ConvclassError
from ..safeio import open_regular
from .archive import member_stamp, sources
from .images import BrokenImage, convert_channels, decode_file, is_grey_mode, to_array
from .sources import LabeledSet

__all__ = ["Decoded", "cache_fits", "cache_key", "decode_set", "peek_files"]

CACHE_VERSION = 2  # 2: (N, C, H, W) on disk
PARALLEL_MIN = 2000  # below this many files, worker start-up costs more than it saves
PROGRESS_MIN = 500   # a decode of fewer files takes a few seconds: no progress bar
SERIAL_CHUNK = 100   # files per progress update when decoding in this process
RESERVE = 2**28      # bytes of the cache's disk left to everything else


class Decoded(NamedTuple):
    images: np.ndarray                 # (N, C, H, W) uint8, memory-mapped when it came from the cache
    labels: np.ndarray                 # (N,)
    paths: list[str] | None            # of the kept images; None for in-memory sources
    broken: list[tuple[str, str]]      # (path, reason) of skipped files
    cache: Path | None = None          # the cache file's path without suffix (derived results can sit beside it)


class _How(NamedTuple):
    """How each file becomes a size x size array (data/preprocess.py's resize policy)."""
    size: int
    channels: int
    resize: str = "squash"
    crop_pct: float = 1.0


def _decode_chunk(args):
    paths, how = args
    out, bad = [None] * len(paths), []
    for i, src in sources(paths, bad):  # archive members come as bytes, each archive read once in its own order
        try:
            out[i] = decode_file(src, *how)
        except BrokenImage as e:
            bad.append((paths[i], str(e)))
    return out, bad


def peek_files(paths: list[str], limit: int = 1000) -> tuple[set[tuple[int, int]], bool]:
    """Sizes seen and whether every image is grey, from file headers only (no pixel decode)."""
    sizes, grey = set(), True
    step = max(1, len(paths) // limit)
    for _, src in sources(paths[::step], []):
        try:  # a file through open_regular (FIFOs and devices are never read), an archive member as its bytes
            with (open_regular(src) if isinstance(src, str) else io.BytesIO(src)) as f, Image.open(f) as im:
                sizes.add(im.size)
                grey &= is_grey_mode(im.mode) or (im.mode == "P" and _palette_is_grey(im))
        except Exception:  # broken files are reported by the real decode
            continue
    return sizes, grey


def _palette_is_grey(im) -> bool:
    pal = np.asarray(im.getpalette() or [], dtype=np.int32).reshape(-1, 3)
    return bool(len(pal)) and bool((pal[:, 0] == pal[:, 1]).all() and (pal[:, 1] == pal[:, 2]).all())


def _decode_all(paths: list[str], how: _How, workers: int | None):
    """Yields (positions, decoded (H, W, C) arrays or None, broken) per chunk, in parallel for many files."""
    workers = workers or min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_MIN or workers < 2:
        for i in range(0, len(paths), SERIAL_CHUNK):
            yield range(i, min(i + SERIAL_CHUNK, len(paths))), *_decode_chunk((paths[i:i + SERIAL_CHUNK], how))
        return
    # Interleaved chunks cost about the same; at most ~1000 images each, so the decoded chunks in flight stay
    # small whatever the set's size.
    n_chunks = max(workers * 8, -(-len(paths) // 1000))
    with ProcessPoolExecutor(workers) as ex:
        results = ex.map(_decode_chunk, [(paths[i::n_chunks], how) for i in range(n_chunks)])
        for i, (out, bad) in enumerate(results):
            yield range(i, len(paths), n_chunks), out, bad


def _tmp_path(cache_dir: Path, key: str, ext: str) -> Path:
    """A name no other process uses: runs decoding the same data at once each write their own, then rename."""
    return cache_dir / f"{key}.{os.getpid()}-{os.urandom(4).hex()}.tmp.{ext}"


def _free(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:  # a cache folder not made yet: its disk
        folder = folder.parent
    return shutil.disk_usage(folder).free - RESERVE


def cache_key(s: LabeledSet, size: int, channels: int, resize: str = "squash", crop_pct: float = 1.0
              ) -> str | None:
    """The name of `s`'s cache file at this size and resize policy; None for images held in memory. Computed
    once per split by prepare_data and handed to cache_fits and decode_set: it stats every file."""
    return _cache_key(s.paths, _How(size, channels, resize, crop_pct)) if s.paths else None


def cache_fits(sets: list[LabeledSet], size: int, channels: int, cache_dir: Path, keys: list[str | None]) -> bool:
    """Whether decode_set could cache these file sets (whose cache_key are `keys`) in cache_dir (sets cached
    already need no more room): prepare_data streams the ones that would not fit (data/stream.py)."""
    need = sum(len(s) * channels * size * size for s, key in zip(sets, keys)
               if key and not (cache_dir / f"{key}.json").exists())
    return need <= _free(cache_dir)


def _check_space(folder: Path, need: int) -> None:
    free = _free(folder) + RESERVE
    if need > free - RESERVE:
        raise ConvclassError(f"the decode cache needs {need / 1e9:.1f} GB in {folder}, but only {free / 1e9:.1f} GB "
                             "are free; point --data-root at a bigger disk, lower --img-size or --subset, or "
                             "stream the images instead (--cache auto or never)")


def _compact(out: np.ndarray, tmp: Path | None, keep: list[int]) -> tuple[np.ndarray, Path | None]:
    """The kept rows only; in a new cache file when `out` is one (then the old file is removed)."""
    if tmp is None:
        return out[keep], None
    if not keep:  # nothing readable: an empty array, saved later (an empty file cannot be mapped)
        empty = np.zeros((0, *out.shape[1:]), np.uint8)
        del out
        os.remove(tmp)
        return empty, None
    tmp2 = tmp.with_name(tmp.name.replace(".tmp.npy", ".kept.tmp.npy"))
    kept = np.lib.format.open_memmap(tmp2, mode="w+", dtype=np.uint8, shape=(len(keep), *out.shape[1:]))
    for i in range(0, len(keep), 4096):
        kept[i:i + 4096] = out[keep[i:i + 4096]]
    del out
    os.remove(tmp)
    return kept, tmp2


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _cache_key(paths: list[str], how: _How) -> str:
    """Every file's absolute path, size and modification time: any edit, addition or removal makes a new key.
    One stat per file (~0.15 s for CIFAR-10's 60,000 on 2 cores), no reading. The resize policy is part of it;
    squash adds nothing, so the caches written before there was a policy are still found."""
    policy = f"|{how.resize}|{how.crop_pct!r}" if how.resize != "squash" else ""
    lines = [f"v{CACHE_VERSION}|{how.size}|{how.channels}{policy}"]
    for p in paths:
        if (member := member_stamp(p)) is not None:  # an image inside an archive or an Arrow file
            lines.append(member)
            continue
        a = p if os.path.isabs(p) else os.path.abspath(p)
        try:
            st = os.stat(p)
            lines.append(f"{a}|{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            lines.append(f"{a}|missing")
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:20]


def _progress(n: int, show: bool):
    """A tqdm bar with ETA on an interactive stderr (the convention of training/hooks/progress.py), else None."""
    if not show or n < PROGRESS_MIN or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=n, desc="decoding", unit="img", leave=False, dynamic_ncols=True)


def decode_set(s: LabeledSet, size: int, channels: int, cache_dir: Path | None = None,
               workers: int | None = None, resize: str = "squash", crop_pct: float = 1.0,
               progress: bool = True, key: str | None = None) -> Decoded:
    """Every image of `s` as size x size uint8 by the resize policy (data/preprocess.py); `progress`: a bar
    while many files decode; `key`: its cache_key when the caller has it already."""
    how = _How(size, channels, resize, crop_pct)
    if s.arrays is not None:
        a = s.arrays
        if a.shape[1:3] != (size, size) or crop_pct != 1.0:
            a = np.stack([to_array(Image.fromarray(x.squeeze(-1) if x.shape[-1] == 1 else x), size, None, resize,
                                   crop_pct) for x in a])
        return Decoded(_nchw(convert_channels(a, channels)), s.labels, None, [])

    paths = s.paths or []
    key = (key or _cache_key(paths, how)) if cache_dir else None
    if key:
        npy, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
        if npy.exists() and meta.exists():
            m = json.loads(meta.read_text())
            keep = np.asarray(m["keep"], dtype=np.int64)
            # Memory-mapped copy-on-write: pages are read from the page cache on demand (no private copy of the
            # whole set), yet the array is writable, so torch.from_numpy accepts it without a warning.
            images = np.load(npy, mmap_mode="c")
            return Decoded(images, s.labels[keep], [paths[i] for i in keep], [tuple(b) for b in m["broken"]],
                           cache_dir / key)

    n, shape = len(paths), (channels, size, size)
    tmp = None
    if key:
        cache_dir.mkdir(parents=True, exist_ok=True)
    if key and n:
        # Decoded straight into the cache file (not into RAM, then saved): a set larger than memory decodes
        # with bounded memory, and a warm run maps the same file.
        _check_space(cache_dir, n * channels * size * size)
        tmp = _tmp_path(cache_dir, key, "npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *shape))
    else:
        out = np.empty((n, *shape), np.uint8)
    ok = np.zeros(n, bool)
    broken = []
    bar = _progress(n, progress)
    try:
        for positions, images, bad in _decode_all(paths, how, workers):
            for i, a in zip(positions, images):
                if a is not None:
                    out[i] = a.transpose(2, 0, 1)
                    ok[i] = True
            broken += bad
            if bar is not None:
                bar.update(len(positions))
    except BaseException:  # interrupted: no half-written file left behind
        if tmp is not None:
            del out
            tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    broken.sort()
    keep = np.flatnonzero(ok).tolist()
    if len(keep) < n:  # broken files leave holes: close them up (rare; costs a copy)
        out, tmp = _compact(out, tmp, keep)
    if key:
        npy = cache_dir / f"{key}.npy"
        if tmp is None:
            tmp = _tmp_path(cache_dir, key, "npy")
            np.save(tmp, out)
        else:
            out.flush()
        del out
        # A unique temporary name, then a rename: runs decoding the same data at once never see half a file;
        # the .json lands last, so its presence means the .npy beside it is complete.
        os.replace(tmp, npy)
        tmp_meta = _tmp_path(cache_dir, key, "json")
        tmp_meta.write_text(json.dumps({"keep": keep, "broken": broken}))
        os.replace(tmp_meta, cache_dir / f"{key}.json")
        images = np.load(npy, mmap_mode="c")
    else:
        images = out
    return Decoded(images, s.labels[np.asarray(keep, dtype=np.int64)], [paths[i] for i in keep], broken,
                   cache_dir / key if key else None)
