"""Grad-CAM overlays for the web page: convclass.interpret's heat map over the uploaded image, as a PNG data URL.

Drawn with PIL rather than matplotlib so the first request with an overlay does not pay matplotlib's import.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["overlay_png"]


def _jet(v: np.ndarray) -> np.ndarray:
    """0..1 -> RGB uint8 with the classic blue-cyan-yellow-red ramp."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def overlay_png(image: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> str:
    """The heat map stretched over the image (the model saw it resized to a square, so stretching is exact),
    as a data: URL."""
    w, h = image.size
    heat = Image.fromarray((cam * 255).astype(np.uint8), "L").resize((w, h), Image.BILINEAR)
    colour = Image.fromarray(_jet(np.asarray(heat, np.float32) / 255.0), "RGB")
    out = Image.blend(image.convert("RGB"), colour, alpha)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
