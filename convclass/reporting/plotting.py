"""Matplotlib set-up shared by every figure: a headless backend, one DPI, labels that fit."""
from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "save", "short", "label_step", "DPI"]

DPI = 100  # pixels per inch of every PNG; figure sizes below are in inches


def pyplot():
    """pyplot on the Agg backend (no display needed); imported on first use so importing convclass stays cheap."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return path


def short(name, width: int = 18) -> str:
    """A class name cut to `width` characters with an ellipsis, so tick labels never run into each other."""
    s = str(name)
    if len(s) <= width:
        return s
    # keep both ends: class names often share a prefix and differ at the end (n01443537, class_007)
    head = (width - 1) // 2
    return s[:head] + "…" + s[-(width - 1 - head):]


def label_step(k: int, max_labels: int = 150) -> int:
    """Label every n-th class when there are more than `max_labels` (ticks at ~6 pt would overlap)."""
    return max(1, -(-k // max_labels))
