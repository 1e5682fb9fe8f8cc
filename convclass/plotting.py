"""Figure helpers shared by every figure of convclass: figures of their own, one DPI, labels that fit, and
image mosaics.

Figures are `matplotlib.figure.Figure` objects on their own Agg canvas, never pyplot's: pyplot's backend and
figure list are global, and a library that switched them (`matplotlib.use("Agg")`) would stop a notebook's
inline plots. These figures need no display and are freed when dropped.

Image grids are drawn as one mosaic image on a single set of axes with text on top: dozens of matplotlib
subplots cost seconds each time, a mosaic costs milliseconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["figure", "subplots", "save", "short", "label_step", "DPI", "to_hwc", "plot_mosaic", "plot_image_grid"]

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


def to_hwc(img) -> np.ndarray:
    """(C, H, W) or (H, W, C) uint8 -> (H, W) grey or (H, W, 3) RGB for imshow."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def _tile(img, side: int) -> np.ndarray:
    """(side, side, 3) uint8; small images are enlarged with visible pixels, large ones shrunk smoothly."""
    a = to_hwc(img)
    im = Image.fromarray(np.ascontiguousarray(a)).convert("RGB")
    im.thumbnail((side, side), Image.LANCZOS) if max(im.size) > side else None
    if max(im.size) < side:
        f = side / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.NEAREST)
    out = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - im.height) // 2, (side - im.width) // 2
    out[y:y + im.height, x:x + im.width] = np.asarray(im)
    return out


def plot_mosaic(rows: list[list], path: str | Path, title: str, captions: list[list[str]] | None = None,
                row_labels: list[str] | None = None, colors: list[list[str]] | None = None, side: int = 72,
                caption_lines: int = 0) -> Path:
    """rows of images -> one PNG; a caption band of `caption_lines` text lines above each image, an optional
    label left of each row. Pixel-exact: one figure pixel per mosaic pixel."""
    pad, line_px, title_px = 6 + 14 * (caption_lines > 0), 10, 26  # captions get 14 more pixels of width
    label_px = 120 if row_labels else 0
    cols = max((len(r) for r in rows), default=1) or 1
    cell_w, cell_h = side + pad, side + pad + caption_lines * line_px
    width = max(label_px + cols * cell_w + pad, 420)
    height = title_px + max(len(rows), 1) * cell_h + pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y0 = title_px + r * cell_h + caption_lines * line_px
            x0 = label_px + pad + c * cell_w
            canvas[y0:y0 + side, x0:x0 + side] = _tile(img, side)
    fig = figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    ax.text(width / 2, title_px / 2, title, ha="center", va="center", fontsize=9.5)
    for r, row in enumerate(rows):
        top = title_px + r * cell_h
        if row_labels:
            ax.text(label_px - 4, top + caption_lines * line_px + side / 2, row_labels[r], ha="right", va="center",
                    fontsize=8)
        for c in range(len(row)):
            if captions and captions[r][c]:
                ax.text(label_px + pad + c * cell_w + side / 2, top + 1, captions[r][c], ha="center", va="top",
                        fontsize=6.5, linespacing=1.05, color=colors[r][c] if colors else "black")
    if not rows or not any(rows):
        ax.text(width / 2, height / 2, "none", ha="center", va="center", fontsize=11)
    fig.savefig(path, dpi=DPI)
    return Path(path)


def plot_image_grid(images, titles: list[str], path: str | Path, title: str, cols: int = 8,
                    colors: list[str] | None = None) -> Path:
    """Images (N, C, H, W) or a list of (H, W[, C]) uint8 with a caption of up to three short lines each."""
    n = len(images)
    chunks = [list(range(i, min(i + cols, n))) for i in range(0, n, cols)]
    return plot_mosaic([[images[i] for i in ch] for ch in chunks], path, title,
                       captions=[[titles[i] for i in ch] for ch in chunks],
                       colors=[[colors[i] for i in ch] for ch in chunks] if colors else None, side=80,
                       caption_lines=3)
