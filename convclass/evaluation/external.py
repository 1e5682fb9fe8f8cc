"""A labelled set other than the one a model was trained on, scored whole (docs/data.md, "Evaluating on another
labelled set"): which of its images count, and its labels matched to the model's classes by name.

Its test split when it has one of its own (a test/ folder, a dataset's test split), else every image it has; never
a carved fraction, which would score a random fifth as if it were the set.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import PreparedData, TensorSplit, find_data
from ..data.decode import decode_set
from ..data.hf import PREFIX
from ..data.names import class_key
from ..data.sources import DataOptions, DataSpec, LabeledSet
from ..errors import ConvclassError

__all__ = ["class_index", "is_training_data", "load_external", "shown_data", "slug"]


def _path(text: str) -> Path | None:
    try:
        p = Path(text).expanduser()
        return p.resolve() if p.exists() else None
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop: not a path of ours
        return None


def _identity(data: str) -> str:
    """What `data` names: the resolved path of a file or folder (after hf: too), else the name, normalised as
    built-in names are looked up."""
    hf = data.startswith(PREFIX)
    body = data[len(PREFIX):] if hf else data
    p = _path(body)
    return PREFIX * hf + (str(p) if p else body.strip().lower().replace("_", "-"))


def is_training_data(data: str, trained_on) -> bool:
    """Whether `data` is what the run recorded as its --data (saved absolute, so a relative or symlinked spelling of
    the same folder counts)."""
    return isinstance(trained_on, str) and bool(trained_on) and _identity(data) == _identity(trained_on)


def shown_data(data: str) -> str:
    """`data` as the output names it: a file or folder by its full path."""
    p = _path(data)
    return str(p) if p else data


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "external"


def _listed(items: list[str], n: int = 10) -> str:
    more = f" … ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def class_index(classes: list[str], model_classes: list[str], display_names: list[str] | None,
                where: str) -> np.ndarray:
    """(len(classes),) int64: the model's class index of each class of a set. By the same name, else the same
    integer (`16` = `00016`), else the model's display name; case counts. An unknown label is an error naming it."""
    exact = {c: i for i, c in enumerate(model_classes)}
    by_key: dict[str, list[int]] = {}
    for i, c in enumerate(model_classes):
        by_key.setdefault(class_key(c), []).append(i)
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(display_names or []):
        by_name.setdefault(n, []).append(i)
    out, unknown = [], []
    for c in classes:
        hits = [exact[c]] if c in exact else by_key.get(class_key(c)) or by_name.get(c) or []
        if len(hits) > 1:
            raise ConvclassError(f"{where}: label {c!r} matches the model's classes "
                                 f"{', '.join(model_classes[i] for i in hits)} alike; relabel the set with one of them")
        out.append(hits[0] if hits else -1)
        if not hits:
            unknown.append(c)
    if unknown:
        raise ConvclassError(f"{where} has {len(unknown)} label(s) the model does not know: {_listed(unknown)}; "
                             f"its {len(model_classes)} classes are {_listed(model_classes)}; relabel the set with "
                             "those (integers match by value, 16 = 00016)")
    return np.asarray(out, dtype=np.int64)


def _concat(sets: list[LabeledSet]) -> LabeledSet:
    if len(sets) == 1:
        return sets[0]
    labels = np.concatenate([s.labels for s in sets])
    if all(s.arrays is not None for s in sets):
        return LabeledSet(labels=labels, arrays=np.concatenate([s.arrays for s in sets]))
    return LabeledSet(labels=labels, paths=[p for s in sets for p in s.paths or []])


def _part(spec: DataSpec, split: str, where: str) -> tuple[LabeledSet, str]:
    """(the images to score, what they are): the split of that name when the set has split folders, else (for
    the default `test`) all of it."""
    parts = {n: s for n, s in (("train", spec.train), ("val", spec.val), ("test", spec.test)) if s is not None}
    if len(parts) > 1 and split in parts:
        return parts[split], f"the {split} split of {where}"
    if split == "test" or (split == "train" and len(parts) == 1):
        return _concat(list(parts.values())), where + (f" (all its splits: {', '.join(parts)})" if len(parts) > 1
                                                       else "")
    has = ", ".join(parts) if len(parts) > 1 else "no split folders"
    raise ConvclassError(f"{where} has no {split} split of its own (it has {has}); leave out --split to score its "
                         "test split, or every image when it has none")


def load_external(data: str, split: str, lm, data_root: str, options: DataOptions | None,
                  progress: bool = True) -> tuple[PreparedData, str]:
    """(the scored images as the test split of a PreparedData in the model's classes, what they are) for the set
    `data`, decoded at the model's size by its resize policy, labels matched before anything is decoded."""
    where = shown_data(data)
    spec = find_data(data, data_root, options)
    part, scope = _part(spec, split, where)
    present = np.unique(part.labels)  # a class only in a split that is not scored need not be the model's
    index = np.full(len(spec.classes), -1, dtype=np.int64)
    index[present] = class_index([spec.classes[i] for i in present], lm.classes, lm.class_names, where)
    if len(part) == 0:
        raise ConvclassError(f"{scope} holds no labelled images")
    cache = Path(data_root).expanduser() / "decoded" if part.paths else None
    d = decode_set(part, lm.img_size, lm.channels, cache, resize=lm.preprocess.resize,
                   crop_pct=lm.preprocess.crop_pct, progress=progress)
    if d.broken:
        warnings.warn(f"skipped {len(d.broken)} unreadable file(s) of {where}, e.g. {d.broken[0][0]} "
                      f"({d.broken[0][1]})", stacklevel=2)
    if len(d.images) == 0:
        raise ConvclassError(f"{scope}: none of its {len(part)} images could be read")
    x = torch.from_numpy(np.ascontiguousarray(d.images))  # (N, C, H, W) uint8
    test = TensorSplit(x=x, y=torch.from_numpy(index[np.asarray(d.labels, dtype=np.int64)]), paths=d.paths)
    none = TensorSplit(x=x[:0], y=test.y[:0], paths=None if d.paths is None else [])
    pre = lm.preprocess
    return PreparedData(name=spec.name, classes=list(lm.classes), train=none, val=none, test=test,
                        img_size=lm.img_size, channels=lm.channels, mean=list(pre.mean), std=list(pre.std),
                        broken=d.broken, notes=[*spec.notes, f"external set: {scope}"], resize=pre.resize,
                        crop_pct=pre.crop_pct, class_names=lm.class_names), scope
