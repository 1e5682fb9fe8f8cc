"""Multi-label data: a CSV whose label cells hold several labels (`dog|person`, `haze primary`, Kaggle style) or
whose labels are one-hot 0/1 columns. Targets become (N, K) uint8 0/1 rows (float32 once decoded); a row of zeros is
an image with none of the labels. Splits stratify such rows by their rarest label (stratify_key), so a rare label
still lands on both sides of a split.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SEPARATORS", "TASKS", "is_multilabel", "multi_hot", "multilabel_folds", "one_hot_columns",
           "read_label_sets", "stratify_key"]

TASKS = ("auto", "single", "multi")
SEPARATORS = "|,;"          # always separate labels inside a cell; whitespace only when the vocabulary says so
_ONE_HOT = {"0", "1", "0.0", "1.0"}


def is_multilabel(labels) -> bool:
    """Whether targets are (N, K) rows rather than (N,) class indices."""
    return getattr(labels, "ndim", 1) == 2


def _space_separated(cells: list[str], split: list[list[str]]) -> bool:
    """Whether whitespace separates labels: some cell has two words and the words are fewer than the distinct
    cells (`haze primary`, `clear primary water` ... 17 words, hundreds of cells). Multi-word class names
    (`golden retriever`, `labrador retriever`, `pug`) bring at least as many words as names."""
    words = {w for s in split for w in s}
    return any(len(s) > 1 for s in split) and len(words) < len({c for c in cells if c})


def read_label_sets(cells: list[str], task: str, separator: str | None = None
                    ) -> tuple[list[list[str]] | None, str | None]:
    """(the labels of each row, how they were read), or (None, None) when the cells are single-label class names.

    task "single": always None; "multi": every cell is a set (a cell without separator holds one label, an empty
    one none); "auto": sets when some cell holds two labels or more. `separator`: forced (one-hot columns)."""
    if task == "single":
        return None, None
    sep = separator or next((s for s in SEPARATORS if any(s in c for c in cells)), None)
    if sep is not None:
        split = [[t.strip() for t in c.split(sep) if t.strip()] for c in cells]
        how = f"separated by {sep!r}"
    else:
        split = [c.split() for c in cells]
        how = "separated by spaces"
        if not _space_separated(cells, split):
            split, how = [[c] if c else [] for c in cells], "one per cell"
    split = [sorted(set(s)) for s in split]
    if task == "auto" and not any(len(s) > 1 for s in split):
        return None, None
    return split, how


def multi_hot(label_sets: list[list[str]], classes: list[str]) -> np.ndarray:
    """(N, K) uint8 with a 1 where row n holds class k."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(label_sets), len(classes)), np.uint8)
    for n, labels in enumerate(label_sets):
        out[n, [index[c] for c in labels]] = 1
    return out


def one_hot_columns(header: list[str], rows: list[list[str]], taken: set[int]) -> list[int]:
    """Columns outside `taken` whose every value is 0 or 1, when there are two or more of them and no other column
    is left: a one-hot label table (`image,cat,dog,person` then 0/1 rows). Otherwise []."""
    rest = [i for i in range(len(header)) if i not in taken]
    cols = [i for i in rest if "|" not in header[i]
            and all(len(r) > i and r[i].strip() in _ONE_HOT for r in rows)]
    return cols if len(cols) >= 2 and len(cols) == len(rest) else []


def multilabel_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Sorted test indices of each of `folds` folds by iterative stratification (Sechidis et al. 2011, the
    iterative-stratification package): each fold gets about its share of every label, rare ones first, where
    stratifying by one key per row would leave a label's positives to chance."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold  # imported on use: cv of multi-label data only
    y = (np.asarray(labels) > 0.5).astype(np.int64)
    split = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    return [np.sort(test) for _, test in split.split(np.zeros(len(y)), y)]


def stratify_key(labels: np.ndarray) -> np.ndarray:
    """(N,) int64 stratum of each row: class indices as they are; a multi-label row's rarest label (by count in
    these rows), K for a row with none."""
    labels = np.asarray(labels)
    if not is_multilabel(labels):
        return labels.astype(np.int64)
    counts = labels.sum(0).astype(np.float64)
    present = labels > 0
    rarest = np.where(present, counts[None, :], np.inf).argmin(1)
    return np.where(present.any(1), rarest, labels.shape[1]).astype(np.int64)
