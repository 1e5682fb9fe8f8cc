"""Reading a confusion matrix: the most-confused class pairs, a pure function of the counts."""
from __future__ import annotations

import numpy as np

__all__ = ["most_confused_pairs"]


def most_confused_pairs(cm, classes: list[str], top: int = 20) -> list[dict]:
    """Off-diagonal cells, largest first: [{true, predicted, count, fraction (of the true class)}].

    Ties are broken by the fraction of the true class, then by class order, so the list is deterministic.
    """
    cm = np.asarray(cm, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows = cm.sum(1)
    i, j = np.nonzero(off)
    if not len(i):
        return []
    counts = off[i, j]
    frac = counts / np.maximum(rows[i], 1)
    order = np.lexsort((j, i, -frac, -counts))[:top]
    return [{"true": classes[i[o]], "predicted": classes[j[o]], "count": int(counts[o]), "fraction": float(frac[o])}
            for o in order]
