"""Where a split's images come from, before decoding: in-memory arrays or file paths, plus integer labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LabeledSet", "DataSpec"]


@dataclass
class LabeledSet:
    """Either `arrays` (N, H, W, C) uint8 or `paths` (N file names); `labels` (N,) int64."""
    labels: np.ndarray
    arrays: np.ndarray | None = None
    paths: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "LabeledSet":
        idx = np.asarray(idx, dtype=np.int64)
        return LabeledSet(
            labels=self.labels[idx],
            arrays=None if self.arrays is None else self.arrays[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
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
