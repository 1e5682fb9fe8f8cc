"""Pictures of what a model computes: heatmap overlays, activation panels, first-layer filters (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import save, subplots, to_hwc

__all__ = ["overlay", "plot_overlay", "plot_channels", "plot_filters"]


def overlay(image, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8: the image in grey or colour under a jet-coloured heatmap (cam in [0, 1], (H, W))."""
    from matplotlib import colormaps
    a = to_hwc(image).astype(np.float64) / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    heat = colormaps["jet"](np.clip(cam, 0, 1))[..., :3]
    return np.clip(255 * ((1 - alpha) * a + alpha * heat), 0, 255).astype(np.uint8)


def plot_overlay(image, cam: np.ndarray, title: str, path: str | Path) -> Path:
    """Input, heatmap and overlay side by side; small images are drawn with visible pixels."""
    a = to_hwc(image)
    nearest = "nearest" if max(a.shape[:2]) < 64 else "antialiased"
    fig, axes = subplots(1, 3, figsize=(10, 3.4), layout="constrained")
    axes[0].imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255, interpolation=nearest)
    axes[0].set_title("input")
    im = axes[1].imshow(cam, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
    axes[1].set_title("heatmap")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="relative importance (0 to 1)")
    axes[1].set_aspect("equal")
    axes[2].imshow(overlay(image, cam), interpolation=nearest)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def _grid(n: int) -> tuple[int, int]:
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def _panels(n: int, width: float, height: float):
    """A near-square grid of n axis-free panels, each about width x height inches (+ room for a title)."""
    rows, cols = _grid(n)
    fig, axes = subplots(rows, cols, figsize=(width * cols, height * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def plot_channels(act: np.ndarray, title: str, path: str | Path, max_channels: int = 256) -> Path:
    """One panel per channel of an activation (C, h, w), each scaled to its own range, numbered."""
    c = min(len(act), max_channels)
    fig, axes = _panels(c, 1.3, 1.35)
    for i in range(c):
        axes.flat[i].imshow(act[i], cmap="viridis", interpolation="nearest")
        axes.flat[i].set_title(str(i), fontsize=7)
    more = f"; first {c} of {len(act)} channels" if c < len(act) else ""
    fig.suptitle(f"{title} ({act.shape[1]}x{act.shape[2]} per channel, each scaled to its own range{more})",
                 fontsize=10)
    return save(fig, path)


def plot_filters(weight: np.ndarray, title: str, path: str | Path, max_filters: int = 256) -> Path:
    """First-layer kernels (out, in, kh, kw): RGB when in = 3, else the mean over input channels, in grey."""
    n = min(len(weight), max_filters)
    fig, axes = _panels(n, 1.0, 1.05)
    for i in range(n):
        w = weight[i]
        w = w.transpose(1, 2, 0) if w.shape[0] == 3 else w.mean(0)
        w = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        axes.flat[i].imshow(w, cmap=None if w.ndim == 3 else "gray", interpolation="nearest")
    fig.suptitle(f"{title} ({weight.shape[2]}x{weight.shape[3]} kernels, each scaled to its own range)",
                 fontsize=10)
    return save(fig, path)
