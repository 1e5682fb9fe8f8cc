"""Matplotlib set-up shared by every figure: figures of their own, one DPI, labels that fit.

Figures are `matplotlib.figure.Figure` objects on their own Agg canvas, never pyplot's: pyplot's backend and
figure list are global, and a library that switched them (`matplotlib.use("Agg")`) would stop a notebook's
inline plots. These figures need no display and are freed when dropped.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["figure", "subplots", "save", "short", "label_step", "DPI"]

DPI = 100  # pixels per inch of every PNG; figure sizes below are in inches
_FIGURE_ARGS = ("figsize", "dpi", "layout")


def figure(**kw):
    """A Figure drawn by Agg; matplotlib is imported on first use so importing convclass stays cheap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, **kw):
    """(figure, axes) like pyplot.subplots: figsize, dpi and layout go to the figure, the rest to its axes."""
    fig = figure(**{k: kw.pop(k) for k in _FIGURE_ARGS if k in kw})
    return fig, fig.subplots(nrows, ncols, **kw)


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
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
