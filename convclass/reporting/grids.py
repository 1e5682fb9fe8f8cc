"""Image grids: the most confident right and wrong predictions, and sample images per class.

Grids are drawn as one mosaic image on a single set of axes with text on top: dozens of matplotlib subplots
cost seconds each time, a mosaic costs milliseconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .plotting import DPI, figure, short

__all__ = ["confident_indices", "plot_image_grid", "plot_prediction_grid", "plot_mosaic", "to_hwc"]


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


def plot_image_grid(images, titles: list[str], path: str | Path, title: str, cols: int = 8,
                    colors: list[str] | None = None) -> Path:
    """Images (N, C, H, W) or a list of (H, W[, C]) uint8 with a caption of up to three short lines each."""
    n = len(images)
    chunks = [list(range(i, min(i + cols, n))) for i in range(0, n, cols)]
    return plot_mosaic([[images[i] for i in ch] for ch in chunks], path, title,
                       captions=[[titles[i] for i in ch] for ch in chunks],
                       colors=[[colors[i] for i in ch] for ch in chunks] if colors else None, side=80,
                       caption_lines=3)


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
