"""Where a split's images come from, before decoding: in-memory arrays or file paths, plus integer labels."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["LabeledSet", "DataSpec", "DataOptions"]


@dataclass
class LabeledSet:
    """Either `arrays` (N, H, W, C) uint8 or `paths` (N file names); `labels` (N,) int64, or (N, K) uint8 0/1
    rows when each image may have several labels (data/multilabel.py); `groups` (N,) str when
    the data says which images belong together (a CSV's group column), for splits that keep groups whole."""
    labels: np.ndarray
    arrays: np.ndarray | None = None
    paths: list[str] | None = None
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "LabeledSet":
        idx = np.asarray(idx, dtype=np.int64)
        return LabeledSet(
            labels=self.labels[idx],
            arrays=None if self.arrays is None else self.arrays[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            groups=None if self.groups is None else self.groups[idx],
        )


@dataclass
class DataSpec:
    """A dataset as found: splits that exist (val/test may be None, then they are carved from train)."""
    name: str
    classes: list[str]
    train: LabeledSet
    val: LabeledSet | None = None
    test: LabeledSet | None = None
    notes: list[str] = field(default_factory=list)  # things the user should hear (ignored folders, ...)
    class_names: list[str] | None = None  # display names aligned with `classes` (which stay the keys)


@dataclass(frozen=True)
class DataOptions:
    """How to read a CSV/TSV (data/table.py) and where the class display names are (data/names.py): the
    TrainConfig options of the same names. None everywhere: found from the file itself."""
    path_column: int | str | None = None
    label_column: int | str | None = None
    group_column: int | str | None = None
    group_by: str | None = None  # a pattern naming each image's group (data/groups.py); beats group_column
    image_root: str | None = None
    image_ext: str | None = None
    class_names: str | None = None
    hf_image_column: str | None = None  # a Hugging Face dataset's columns and training split (data/hf.py)
    hf_label_column: str | None = None
    hf_split: str | None = None
    task: str | None = "auto"  # auto | single | multi (data/multilabel.py); None (older configs): auto

    @classmethod
    def from_config(cls, cfg: Any) -> "DataOptions":
        """From a TrainConfig, or the config dict a checkpoint recorded (older ones lack these keys)."""
        get = cfg.get if isinstance(cfg, dict) else (lambda k, d=None: getattr(cfg, k, d))
        return cls(**{f.name: get(f.name, None) for f in fields(cls)})
