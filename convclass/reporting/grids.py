"""Image grids of a run: the most confident right and wrong predictions (mosaics drawn by plotting.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import plot_image_grid, short

__all__ = ["confident_indices", "images_at", "plot_prediction_grid"]


def images_at(idx, images=None, paths: list[str] | None = None, n: int = 0) -> dict | None:
    """{index: image} of the selected rows of a split of n: from `images` (the split in memory) or decoded from
    the stored paths; None when neither is there or a file has moved or gone. A dict stands in for the whole
    split, so only the few images shown are read."""
    if images is not None:
        return {int(i): images[int(i)] for i in idx}
    if not paths or len(paths) != n:
        return None
    from ..data.images import BrokenImage, decode_file
    try:
        return {int(i): decode_file(paths[int(i)], None) for i in idx}
    except (BrokenImage, OSError):
        return None


def confident_indices(y_true, probs, correct: bool, n: int = 24) -> np.ndarray:
    """Indices of the `n` most confident correct (or wrong) predictions, most confident first."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    if not len(y_true):
        return np.zeros(0, np.int64)
    pred = probs.argmax(1)
    conf = probs.max(1)
    idx = np.flatnonzero((pred == y_true) == correct)
    return idx[np.argsort(-conf[idx], kind="stable")][:n]


def plot_prediction_grid(images, y_true, probs, classes: list[str], path: str | Path, correct: bool,
                         n: int = 24) -> Path:
    """The `n` most confident correct (or wrong) predictions, captioned true / predicted (probability)."""
    probs = np.asarray(probs)
    idx = confident_indices(y_true, probs, correct, n)
    titles = [f"true: {short(classes[int(y_true[i])], 15)}\npred: {short(classes[int(probs[i].argmax())], 15)}\n"
              f"p = {probs[i].max():.2f}" for i in idx]
    what = "correct" if correct else "wrong"
    return plot_image_grid([images[i] for i in idx], titles, path,
                           f"most confident {what} predictions (p: probability of the predicted class)",
                           colors=["darkgreen" if correct else "darkred"] * len(idx))
