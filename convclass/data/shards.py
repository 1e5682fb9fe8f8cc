"""WebDataset tar shards: `--data 'shards-{0000..0099}.tar'` read as a streaming training source, and
`convclass shard` writing them.

A shard is a plain tar of samples, each a group of members sharing a key (`00000042.jpg` + `00000042.cls`): the
image and its class index (a `.cls` holding the integer, or a `.json` holding it or {"label": N}), or for
multi-label data its labels (a `.json` holding {"labels": [K, ...]} or a bare list; [] for none). A small index,
shards.json, beside the shards gives the class names and lists the shards of each split, so the val and test
shards are found from the training pattern.

Shards are read through archive.py, never extracted: a listing keeps only regular members with plain names inside
the tar, each read is bounded, labels at most MAX_LABEL_BYTES. The training split streams (stream.py) in shard
order: every epoch the shards are shuffled from the seed and the epoch, each DDP rank reads its own share of them
(every world-th), samples in the order the shard stores them (`convclass shard` writes them shuffled), so each
rank reads its files front to back; validation and the test read their members as the cache would.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import ConvclassError
from ..safeio import Refused, read_regular
from .archive import SEP, list_members, read_source, sources
from .multilabel import is_multilabel, multi_hot
from .sources import DataSpec, LabeledSet

__all__ = ["INDEX", "is_shards", "expand_shards", "scan_shards", "shard_plan", "write_shards"]

INDEX = "shards.json"
MAX_SHARDS = 100_000          # names one pattern may expand to (ImageNet at 1,000 images a shard: 1,282)
MAX_INDEX_BYTES = 16 * 2**20  # the index lists names, not samples: a few KB
MAX_LABEL_BYTES = 4096
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "ppm", "pgm")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.tar")  # a shard the index names: a file beside it, no path
_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif", "TIFF": "tiff", "PPM": "ppm"}


def is_shards(data: str) -> bool:
    """A brace pattern of .tar files (`shards-{0000..0099}.tar`) or a shards.json index."""
    return (data.endswith(".tar") and "{" in data and "}" in data) or Path(data).name == INDEX


def expand_shards(pattern: str) -> list[str]:
    """The files a brace pattern names, each an existing file (no URLs or pipes: nothing from --data runs)."""
    if "://" in pattern or pattern.startswith("pipe:"):
        raise ConvclassError(f"--data {pattern}: shards are read from files (a local or mounted shared folder), not "
                             "URLs or pipes; mount the bucket (e.g. s3fs, gcsfuse) and give the file pattern")
    names = _braces(os.path.expanduser(pattern))
    missing = [n for n in names if not os.path.isfile(n)]
    if missing:
        raise ConvclassError(f"--data {pattern}: {len(missing)} of {len(names)} shards missing, e.g. {missing[0]}")
    return names


def _braces(pattern: str) -> list[str]:
    """Bash's brace expansion of {A..B} (zero-padded as written: {0000..0099}) and {x,y,z}, counted before anything
    is built: `{0..999999999}` is refused at once, where expanding first would fill the memory."""
    parts, total = [], 1
    for piece in re.split(r"(\{[^{}]*\})", pattern):
        body = piece[1:-1] if piece.startswith("{") and piece.endswith("}") else None
        if body is not None and (m := re.fullmatch(r"(\d{1,9})\.\.(\d{1,9})", body)):
            lo, hi, width = int(m[1]), int(m[2]), len(m[1]) if m[1].startswith("0") else 0
            step = 1 if hi >= lo else -1
            parts.append([str(v).zfill(width) for v in range(lo, hi + step, step)] if abs(hi - lo) < MAX_SHARDS
                         else range(abs(hi - lo) + 1))
        elif body is not None and "," in body:
            parts.append(body.split(","))
        else:
            parts.append([piece])
        total *= len(parts[-1])
        if total > MAX_SHARDS:
            raise ConvclassError(f"--data {pattern} names more than {MAX_SHARDS:,} shards; write fewer, larger ones")
    return ["".join(p) for p in itertools.product(*parts)]


def _read_index(folder: Path) -> dict | None:
    path = folder / INDEX
    if not path.exists():
        return None
    try:
        index = json.loads(read_regular(path, MAX_INDEX_BYTES))
    except (Refused, OSError, ValueError) as e:
        raise ConvclassError(f"{path}: not a readable shard index ({str(e).splitlines()[0][:100]}); rewrite it "
                             "with `convclass shard`") from None
    classes, names, splits = index.get("classes"), index.get("class_names"), index.get("splits", {})
    ok = (isinstance(classes, list) and all(isinstance(c, str) and 0 < len(c) <= 1024 for c in classes)
          and (names is None or (isinstance(names, list) and len(names) == len(classes)
                                 and all(isinstance(n, str) and len(n) <= 1024 for n in names)))
          and isinstance(splits, dict) and all(isinstance(v, list) and all(isinstance(n, str) and _NAME.fullmatch(n)
                                                                             for n in v) for v in splits.values()))
    if not ok:
        raise ConvclassError(f"{path}: expected {{\"classes\": [names], \"class_names\": [names] or null, "
                             "\"splits\": {\"train\": [\"train-0000.tar\", ...], ...}} with shard file names beside "
                             "it; rewrite it with `convclass shard`")
    return index


def _index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _label(raw: bytes, ext: str, where: str) -> int | list[int]:
    """The class index a .cls or .json member holds, or the sorted label indices of a multi-label sample."""
    try:
        if len(raw) > MAX_LABEL_BYTES:
            raise ValueError(f"{len(raw):,} bytes")
        value = json.loads(raw) if ext == "json" else int(raw.decode("ascii").strip())
        if isinstance(value, dict):
            value = value.get("labels", value.get("label", value.get("cls")))
        if isinstance(value, list) and all(map(_index, value)):
            return sorted(set(value))
        if not _index(value):
            raise ValueError(repr(value)[:40])
        return value
    except (ValueError, UnicodeDecodeError) as e:
        raise ConvclassError(f"{where}: a label must be a class index (0, 1, ...) or a list of them, not {e}") \
            from None


def _samples(shard: str, notes: list[str]) -> tuple[list[str], list]:
    """(image paths SHARD::MEMBER, labels) of one shard's samples, in the shard's order."""
    members, skipped = list_members(shard)
    notes += skipped
    keys: dict[str, dict[str, str]] = {}
    for m in members:  # WebDataset's key: the member's name up to the first dot of its file name
        head, _, base = m.rpartition("/")
        stem, dot, ext = base.partition(".")
        if dot:
            keys.setdefault(f"{head}/{stem}" if head else stem, {})[ext.lower()] = m
    images, labels = [], []
    for parts in keys.values():
        image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
        label = parts.get("cls", parts.get("json"))
        if image is not None and label is not None:
            images.append(image)
            labels.append(label)
    if len(images) < len(keys):
        notes.append(f"{shard}: skipped {len(keys) - len(images)} sample(s) without both an image and a .cls/.json")
    bad: list[tuple[str, str]] = []
    values = [0] * len(labels)
    for i, raw in sources([f"{shard}{SEP}{m}" for m in labels], bad):
        values[i] = _label(raw, labels[i].rsplit(".", 1)[-1].lower(), f"{shard}{SEP}{labels[i]}")
    if bad:
        raise ConvclassError(f"{bad[0][0]}: {bad[0][1]}")
    return [f"{shard}{SEP}{m}" for m in images], values


def _split(shards: list[str], notes: list[str]) -> tuple[list[str], list]:
    paths, labels = [], []
    for shard in shards:
        p, y = _samples(shard, notes)
        paths += p
        labels += y
    return paths, labels


def _labeled(found: tuple[list[str], list], k: int) -> LabeledSet:
    """Class indices (N,), or (N, K) 0/1 rows of the label lists of multi-label shards."""
    paths, values = found
    if values and isinstance(values[0], list):
        return LabeledSet(labels=multi_hot(values, list(range(k))), paths=paths)  # classes named by their index
    return LabeledSet(labels=np.asarray(values, dtype=np.int64), paths=paths)


def scan_shards(data: str) -> DataSpec:
    """The training split from the shards `data` names (or the index's train list), val and test from the index."""
    folder = Path(data).expanduser().parent
    index = _read_index(folder)
    if Path(data).name == INDEX:
        if index is None:
            raise ConvclassError(f"{data}: no such shard index")
        train = [str(folder / n) for n in index["splits"].get("train", [])]
    else:
        train = expand_shards(data)
    notes: list[str] = []
    found = {"train": _split(train, notes)}
    if not found["train"][0]:
        raise ConvclassError(f"--data {data}: the shards hold no samples with both an image and a .cls/.json label")
    splits = (index or {}).get("splits", {})
    for name in ("val", "test"):
        if splits.get(name):
            found[name] = _split([str(folder / n) for n in splits[name]], notes)
    values = [v for _, y in found.values() for v in y]
    if len({isinstance(v, list) for v in values}) > 1:
        raise ConvclassError(f"--data {data}: the shards mix class indices and label lists; write them again with "
                             "`convclass shard`")
    top = max(max(v, default=-1) if isinstance(v, list) else v for v in values)
    classes = index["classes"] if index else [str(c) for c in range(top + 1)]
    if top >= len(classes) or not classes:
        raise ConvclassError(f"--data {data}: a label is {top} but {folder / INDEX} lists {len(classes)} classes")
    spec = DataSpec(name=folder.name or "shards", classes=list(classes), notes=notes,
                    class_names=(index or {}).get("class_names"),
                    **{name: _labeled(f, len(classes)) for name, f in found.items()})
    if index is None:
        notes.append(f"no {INDEX} beside the shards: classes are the label numbers 0..{top}")
    return spec


def _epoch_seed(seed: int, epoch: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"shards/{seed}/{epoch}".encode(), digest_size=8).digest(), "little") >> 2


def shard_plan(paths: list[str], sizes: list[int], seed: int, epoch: int, rank: int = 0, world: int = 1
               ) -> list[torch.Tensor]:
    """This rank's image indices for each step of the epoch, whose global batches hold `sizes` images: the shards
    shuffled from (seed, epoch), every world-th one this rank's, read in order, and cycled when the rank's share
    is short (DDP ranks must take the same number of steps; shards of equal size keep that rare)."""
    by_shard: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_shard.setdefault(p.split(SEP, 1)[0], []).append(i)
    names = sorted(by_shard)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)))
    mine = [i for k in order[rank::world].tolist() for i in by_shard[names[k]]]
    if not mine:
        raise ConvclassError(f"{len(names)} training shard(s) for {world} processes: every process needs one; "
                             "write more, smaller shards (convclass shard --shard-size)")
    shares = [len(range(rank, b, world)) for b in sizes]  # the rank's part of each global batch, as distributed.shard
    need = sum(shares)
    stream = (mine * -(-need // len(mine)))[:need]
    starts = np.cumsum([0] + shares)
    return [torch.tensor(stream[a:b], dtype=torch.int64) for a, b in zip(starts[:-1], starts[1:])]


def _image_bytes(s: LabeledSet, i: int) -> tuple[bytes, str] | None:
    """(encoded image, extension) of sample i: a file's own bytes (never re-encoded), arrays as PNG; None when
    it is not a readable image."""
    from PIL import Image
    if s.arrays is not None:
        a = s.arrays[i]
        buf = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, "PNG")
        return buf.getvalue(), "png"
    try:
        raw = read_source(s.paths[i])
        with Image.open(io.BytesIO(raw)) as im:
            return raw, _FORMATS.get(im.format or "", "img")
    except Exception:  # unreadable: left out and counted, as decoding skips it
        return None


def write_shards(spec: DataSpec, out: str | Path, shard_size: int = 1000, seed: int = 0) -> dict:
    """Each split of `spec` as OUT/<split>-0000.tar ... (training samples shuffled from `seed`) plus OUT/shards.json;
    returns what was written, with the --data pattern that trains on it."""
    import webdataset as wds
    if shard_size < 1:
        raise ConvclassError(f"--shard-size must be at least 1, not {shard_size}")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = {}, 0
    for name, s in (("train", spec.train), ("val", spec.val), ("test", spec.test)):
        if s is None or len(s) == 0:
            continue
        order = np.random.default_rng(seed).permutation(len(s)) if name == "train" else np.arange(len(s))
        with wds.ShardWriter(str(out).replace("%", "%%") + f"/{name}-%04d.tar", maxcount=shard_size, verbose=0) as sink:
            for key, i in enumerate(order.tolist()):
                found = _image_bytes(s, i)
                if found is None:
                    skipped += 1
                    continue
                label = ({"json": json.dumps({"labels": np.flatnonzero(s.labels[i]).tolist()}).encode()}
                         if is_multilabel(s.labels) else {"cls": str(int(s.labels[i])).encode()})
                sink.write({"__key__": f"{key:08d}", found[1]: found[0], **label})
            count = sink.shard
        written[name] = [f"{name}-{k:04d}.tar" for k in range(count)]
    index = {"format": "convclass-shards", "version": 1, "classes": list(spec.classes),
             "class_names": spec.class_names, "splits": written}
    tmp = out / f".{INDEX}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / INDEX)
    n = len(written.get("train", []))
    return {"out": str(out), "splits": {k: len(v) for k, v in written.items()}, "skipped": skipped,
            "data": str(out / f"train-{{0000..{n - 1:04d}}}.tar")}
