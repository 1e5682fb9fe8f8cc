"""Figures of a dataset: class counts per split, image sizes, sample images per class."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..plotting import label_step, plot_mosaic, save, short, subplots

__all__ = ["plot_class_counts", "plot_sizes", "plot_samples"]


def plot_class_counts(counts: dict[str, list[int]], classes: list[str], path: str | Path) -> Path:
    k = len(classes)
    fig, ax = subplots(figsize=(float(np.clip(0.13 * k + 2, 7, 30)), 4))
    x = np.arange(k)
    splits = [s for s in ("train", "val", "test") if s in counts and sum(counts[s])]
    w = 0.8 / max(len(splits), 1)
    for n, s in enumerate(splits):
        ax.bar(x + (n - (len(splits) - 1) / 2) * w, counts[s], width=w, label=f"{s} ({sum(counts[s])})")
    step = label_step(k)
    ax.set_xticks(x[::step], [short(c) for c in classes][::step], rotation=90 if k > 10 else 30,
                  ha="center" if k > 10 else "right", fontsize=9 if k <= 30 else 6)
    ax.set_xlim(-0.7, k - 0.3)
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    ax.set_title("images per class and split", pad=24)
    return save(fig, path)


def plot_sizes(sizes: list[tuple[int, int]], modes: list[str], path: str | Path) -> Path:
    """Scatter of width x height (area = how many images) and a bar per colour mode."""
    fig, (ax, ax2) = subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    c = Counter(sizes)
    wh = np.asarray(list(c.keys()), dtype=float).reshape(-1, 2)
    n = np.asarray(list(c.values()), dtype=float)
    if len(n):
        ax.scatter(wh[:, 0], wh[:, 1], s=20 + 300 * n / n.max(), alpha=0.5)
        for (w, h), m in c.most_common(3):
            ax.annotate(f"{w}x{h}: {m}", (w, h), fontsize=8, xytext=(4, 4), textcoords="offset points")
    if len(n):  # from 0, whole pixels: one size alone would otherwise get a zoomed axis of 0.1-pixel ticks
        from matplotlib.ticker import MaxNLocator
        ax.set_xlim(0, wh[:, 0].max() * 1.15 + 1)
        ax.set_ylim(0, wh[:, 1].max() * 1.15 + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("width (pixels)")
    ax.set_ylabel("height (pixels)")
    ax.set_title(f"image sizes ({len(c)} distinct)")
    ax.grid(alpha=0.3)
    mc = Counter(modes).most_common()
    ax2.bar([m for m, _ in mc], [v for _, v in mc], color="tab:gray")
    ax2.set_ylabel("images")
    ax2.set_xlabel("PIL mode")
    ax2.set_title("colour modes")
    return save(fig, path)


def plot_samples(thumbs: dict[int, list[np.ndarray]], classes: list[str], path: str | Path,
                 max_classes: int = 30, per_class: int = 8) -> Path:
    """One row per class (the first `max_classes`), `per_class` images each, class name on the left."""
    rows = [c for c in range(len(classes)) if thumbs.get(c)][:max_classes]
    more = len(classes) - len(rows)
    title = "sample images per class" + (f" (first {len(rows)}; {more} more classes not shown)" if more > 0 else "")
    return plot_mosaic([thumbs[c][:per_class] for c in rows], path, title,
                       row_labels=[short(classes[c], 16) for c in rows], side=56)
