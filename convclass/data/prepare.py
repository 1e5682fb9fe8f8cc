"""From `--data` to tensors ready to train on: find the splits, carve missing ones, decode, compute statistics."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConvclassError
from .archive import is_archive, scan_archive
from .builtin import BUILTIN, load_builtin
from .decode import cache_fits, cache_key, decode_set, peek_files
from .folder import scan_csv, scan_folder
from .groups import data_folder, group_split, with_groups
from .hf import PREFIX, load_hf
from .leakage import find_leaks, leak_warning
from .multilabel import is_multilabel, stratify_key
from .preprocess import Preprocess, check_policy
from .shards import is_shards, scan_shards
from .stream import StreamImages
from .names import with_class_names
from .sources import DataOptions, DataSpec, LabeledSet

__all__ = ["TensorSplit", "PreparedData", "channel_stats", "find_data", "prepare_data", "stratified_split"]

STATS_SAMPLE = 500  # streamed training images whose pixels give the channel statistics (the cache uses all)


@dataclass
class TensorSplit:
    x: torch.Tensor            # (N, C, H, W) uint8; a StreamImages (stream.py) when the split is streamed
    y: torch.Tensor            # (N,) int64 class indices, or (N, K) float32 0/1 rows (multi-label)
    paths: list[str] | None = None  # source files, when the data came from files

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class PreparedData:
    name: str
    classes: list[str]
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    img_size: int
    channels: int
    mean: list[float]          # per channel, on the 0..1 scale, from the training split
    std: list[float]
    broken: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # How a photo becomes the model's img_size x img_size input (data/preprocess.py). The stored images may be
    # larger (finetune.InputPlan: crop policy at img_size / crop_pct, centre-cropped for evaluation), so this
    # is the recipe for an original file, the one checkpoints record.
    resize: str = "squash"
    crop_pct: float = 1.0
    class_names: list[str] | None = None  # display names aligned with `classes` (data/names.py)
    groups: dict[str, str] | None = None  # file -> group, when --group-by or a CSV group column grouped them
    near_duplicates: int | None = None  # carved test images with a near-copy in training; None: not checked

    @property
    def task(self) -> str:
        """single (one class per image) or multi (data/multilabel.py): what the loss, metrics and heads follow."""
        return "multi" if is_multilabel(self.train.y) else "single"

    @property
    def preprocess(self) -> Preprocess:
        """How photos become model input (and what checkpoints record); read it once per loop."""
        return Preprocess(img_size=self.img_size, channels=self.channels, mean=self.mean, std=self.std,
                          resize=self.resize, crop_pct=self.crop_pct)

    def summary(self) -> str:
        return (f"{self.name}: {len(self.classes)} classes, train {len(self.train)} / val {len(self.val)} / "
                f"test {len(self.test)} images, {self.channels}x{self.img_size}x{self.img_size}")


def find_data(data: str, data_root: str = "~/.cache/convclass", options: DataOptions | None = None) -> DataSpec:
    """The dataset `data` names; `options`: how to read a CSV and where the class display names are."""
    options = options or DataOptions()
    return with_class_names(_find_spec(data, data_root, options), data, options.class_names)


def _find_spec(data: str, data_root: str, options: DataOptions) -> DataSpec:
    if data.startswith(PREFIX):
        return load_hf(data[len(PREFIX):], data_root, options)
    if is_shards(data):
        return scan_shards(data)
    p = Path(data).expanduser()
    if p.is_file() and p.suffix.lower() in (".csv", ".tsv"):
        return scan_csv(p, options)
    if p.is_file() and is_archive(p):
        return scan_archive(p, options)
    if p.is_dir():
        return scan_folder(p)
    key = data.lower().replace("_", "-")
    if key in BUILTIN or key in ("fashion", "cifar-10", "cifar-100", "tinyimagenet", "flowers"):
        return load_builtin(data, data_root)
    raise ConvclassError(f"--data {data!r} is neither a folder, a CSV file, a .zip or .tar[.gz] archive, "
                         f"hf:NAME_OR_PATH, nor a built-in dataset ({', '.join(BUILTIN)})")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with about `fraction` of each class held out (at least one per class of 2+)."""
    rng = np.random.default_rng(seed)
    labels = stratify_key(labels)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        else:
            n = 0
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _carve(s: LabeledSet, fraction: float, seed: int) -> tuple[LabeledSet, LabeledSet]:
    """(kept, held out): whole groups when the images are grouped, else image by image, stratified by class."""
    if s.groups is not None:
        keep, held = group_split(s.labels, s.groups, fraction, seed)
    else:
        keep, held = stratified_split(s.labels, fraction, seed)
    return s.subset(keep), s.subset(held)


def _group_map(spec: DataSpec) -> dict[str, str] | None:
    """file -> group over every split that has groups (cross-validation pools them all); None: ungrouped."""
    found = [s for s in (spec.train, spec.val, spec.test) if s is not None and s.groups is not None and s.paths]
    return {p: g for s in found for p, g in zip(s.paths, s.groups.tolist())} or None


def _resolve_size_and_channels(spec: DataSpec, img_size: int | None, channels: int | None,
                               default_size: int) -> tuple[int, int]:
    tr = spec.train
    if tr.arrays is not None:
        sizes = {tuple(tr.arrays.shape[1:3])}
        grey = tr.arrays.shape[-1] == 1
    else:
        sizes, grey = peek_files(tr.paths or [])
    if img_size is None:
        (w, h), = sizes if len(sizes) == 1 else ((0, 1),)
        img_size = w if w == h and w > 0 else default_size
    if channels is None:
        channels = 1 if grey else 3
    if channels not in (1, 3):
        raise ConvclassError(f"--channels must be 1 or 3, not {channels}")
    return int(img_size), int(channels)


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0..1 scale of a uint8 (N, C, H, W) tensor, exact, from a 256-bin
    histogram per channel: ~0.15 s for CIFAR-10's 49,000 images where float sums took ~1.5 s (part of every
    run's start-up)."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    mean, std = [], []
    for ch in range(x.shape[1]):
        hist = torch.zeros(256, dtype=torch.float64)
        for i in range(0, len(x), 8192):  # a contiguous copy of one channel of a chunk: bounded memory
            hist += torch.bincount(x[i:i + 8192, ch].reshape(-1), minlength=256).double()
        n = hist.sum().clamp(min=1)
        m = float((hist * levels).sum() / n)
        var = float((hist * (levels - m) ** 2).sum() / n)
        mean.append(m)
        std.append(max(var ** 0.5, 1e-3))
    return mean, std


def _cached_stats(x: torch.Tensor, cache: Path | None) -> tuple[list[float], list[float]]:
    """channel_stats, kept beside a decode cache file: the same pixels always give the same statistics."""
    path = cache.with_suffix(".stats.json") if cache is not None else None
    if path is not None and path.exists():
        m = json.loads(path.read_text())
        return m["mean"], m["std"]
    mean, std = channel_stats(x)
    if path is not None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"mean": mean, "std": std}))
        os.replace(tmp, path)
    return mean, std


def _labels(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.float32 if is_multilabel(labels) else np.int64))


def _to_split(images: np.ndarray, labels: np.ndarray, paths) -> TensorSplit:
    x = torch.from_numpy(np.ascontiguousarray(images))  # (N, C, H, W): a cache file maps in without a copy
    return TensorSplit(x=x, y=_labels(labels), paths=paths)


def _streams(cache: str, data: str, sets: list[LabeledSet], size: int, ch: int, cache_dir: Path,
             keys: list[str | None], notes: list[str]) -> bool:
    """Whether to stream the splits (--cache), saying why in `notes`; `keys`: the sets' cache_key."""
    if cache == "always" or any(s.paths is None for s in sets):  # arrays in memory (built-ins) are cached
        return False
    if cache == "never":
        notes.append("--cache never: images are decoded per batch from their files (streaming)")
    elif is_shards(data):
        notes.append("WebDataset shards: training images are read shard by shard and decoded per batch")
    elif not cache_fits(sets, size, ch, cache_dir, keys):
        gb = sum(len(s) for s in sets) * ch * size * size / 1e9
        notes.append(f"the decoded images ({gb:.1f} GB) do not fit the free space of {cache_dir}: streaming them "
                     "from their files, decoded per batch (--data-root on a bigger disk would cache them)")
    else:
        return False
    return True


def _streamed(spec: DataSpec, sets: dict[str, LabeledSet], size: int, ch: int, resize: str, crop_pct: float,
              notes: list[str], seed: int, shards: bool) -> PreparedData:
    """The splits as files decoded on demand (stream.py); mean and std from a seeded sample of training images."""
    tensors = {name: TensorSplit(StreamImages(s.paths, size, ch, resize, crop_pct, shards and name == "train"),
                                 _labels(s.labels), list(s.paths))
               for name, s in sets.items()}
    train = tensors["train"].x
    sample = np.sort(np.random.default_rng(seed).permutation(len(train))[:STATS_SAMPLE])
    mean, std = channel_stats(train[sample])
    if spec.test is None and spec.train.groups is None:
        notes.append("near-copies between the carved test split and training are not checked when streaming")
    return PreparedData(name=spec.name, classes=spec.classes, img_size=size, channels=ch, mean=mean, std=std,
                        notes=notes, resize=resize, crop_pct=crop_pct, class_names=spec.class_names,
                        groups=_group_map(spec), **tensors)


def prepare_data(data: str = "digits", *, data_root: str = "~/.cache/convclass", img_size: int | None = None,
                 channels: int | None = None, val_split: float = 0.1, test_split: float = 0.2,
                 subset: int | None = None, seed: int = 0, default_size: int = 64,
                 verbose: bool = True, resize: str = "squash", crop_pct: float = 1.0,
                 options: DataOptions | None = None, cache: str = "always") -> PreparedData:
    """The splits decoded at img_size by the resize policy (`resize`, `crop_pct`: data/preprocess.py). `cache`:
    always decodes them once into the cache (decode.py), never streams them (stream.py), auto streams when the
    cache would not fit, or the data is WebDataset shards."""
    check_policy(resize, crop_pct)
    options = options or DataOptions()
    spec = find_data(data, data_root, options)
    notes = list(spec.notes)
    spec = with_groups(spec, data, options.group_by, notes)
    train = spec.train
    if len(train) == 0:
        raise ConvclassError(f"{data}: the training split is empty")
    test = spec.test
    if test is None:
        train, test = _carve(train, test_split, seed)
        how = "images in whole groups" if test.groups is not None else "stratified images"
        notes.append(f"no test split found: held out {len(test)} {how} ({test_split:.0%}) as test")
    val = spec.val
    if val is None:
        train, val = _carve(train, val_split, seed + 1)
    if subset and subset < len(train):
        _, kept = stratified_split(train.labels, subset / len(train), seed + 2)
        train = train.subset(kept)
    elif subset and subset > len(train) and verbose:  # asked for more than there is: say so, train on all
        warnings.warn(f"--subset {subset} is more than the {len(train)} training images {data} has (after "
                      f"holding out val and test); training on all {len(train)}", stacklevel=2)
    size, ch = _resolve_size_and_channels(spec, img_size, channels,
                                          default_size)
    cache_dir = Path(data_root).expanduser() / "decoded"
    sets = {"train": train, "val": val, "test": test}
    # One stat of every file for all that follows (a warm start of CIFAR-10 once spent ~1 s statting its 60,000
    # files three times); none when the images stream by choice, which may be far more files than a cache holds.
    keys = {} if cache == "never" or is_shards(data) else \
        {name: cache_key(s, size, ch, resize, crop_pct) for name, s in sets.items()}
    if _streams(cache, data, list(sets.values()), size, ch, cache_dir, list(keys.values()), notes):
        return _streamed(spec, sets, size, ch, resize, crop_pct, notes, seed, is_shards(data))
    splits = {name: decode_set(s, size, ch, cache_dir if s.paths else None, resize=resize, crop_pct=crop_pct,
                               progress=verbose, key=keys.get(name))
              for name, s in sets.items()}
    broken = [b for d in splits.values() for b in d.broken]
    if broken and verbose:
        shown = ", ".join(f"{p} ({r})" for p, r in broken[:20])
        more = f" and {len(broken) - 20} more" if len(broken) > 20 else ""
        warnings.warn(f"skipped {len(broken)} unreadable file(s): {shown}{more}", stacklevel=2)
    if len(splits["train"].images) == 0:
        raise ConvclassError(f"{data}: no readable training images (skipped {len(broken)} broken files)")
    train_y = splits["train"].labels
    present = set(np.flatnonzero(train_y.sum(0)).tolist() if is_multilabel(train_y) else np.unique(train_y).tolist())
    absent = [spec.classes[c] for c in range(len(spec.classes)) if c not in present]
    if absent:
        raise ConvclassError(f"class(es) {', '.join(absent[:10])} have no readable training images; "
                             "add some or remove the class")
    tensors = {k: _to_split(d.images, d.labels, d.paths) for k, d in splits.items()}
    mean, std = _cached_stats(tensors["train"].x, splits["train"].cache)
    leaks = None
    if spec.test is None and spec.train.groups is None:  # carved image by image: near-copies would leak
        leak = find_leaks(tensors["train"].x, tensors["test"].x, seed)
        leaks = leak.count
        if leak.count and verbose:
            warnings.warn(leak_warning(leak, tensors["test"].paths, tensors["train"].paths, data_folder(data)),
                          stacklevel=2)
    return PreparedData(name=spec.name, classes=spec.classes, img_size=size, channels=ch, mean=mean, std=std,
                        broken=broken, notes=notes, resize=resize, crop_pct=crop_pct,
                        class_names=spec.class_names, groups=_group_map(spec), near_duplicates=leaks, **tensors)
