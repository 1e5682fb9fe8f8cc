"""Figures drawn from metric dicts (never from models), saved as PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import subplots  # a figure of its own: pyplot's backend is left alone

__all__ = ["plot_confusion_matrix"]


def plot_confusion_matrix(cm, classes: list[str], path: str | Path, normalize: bool = False,
                          title: str | None = None) -> Path:
    cm = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    side = min(max(4.0, 0.45 * k + 2), 40.0)
    fig, ax = subplots(figsize=(side + 1.5, side))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "images")
    if k <= 40:
        ticks = np.arange(k)
        ax.set_xticks(ticks, [str(c) for c in classes], rotation=90 if k > 10 else 45, ha="right" if k <= 10 else
                      "center", fontsize=8)
        ax.set_yticks(ticks, [str(c) for c in classes], fontsize=8)
    if k <= 20:
        thresh = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                v = cm[i, j]
                if v:
                    ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                            color="white" if v > thresh else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix (counts)"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
