"""Grad-CAM overlays for the web page: convclass.interpret's heat map over the uploaded image, as a PNG data URL.

Drawn with PIL rather than matplotlib so the first request with an overlay does not pay matplotlib's import.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["overlay_png", "MIN_SIDE"]

MIN_SIDE = 192  # pixels: the size the page shows the overlay at


def _jet(v: np.ndarray) -> np.ndarray:
    """0..1 -> RGB uint8 with the classic blue-cyan-yellow-red ramp."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def overlay_png(image: Image.Image, cam: np.ndarray, strength: float = 0.6) -> str:
    """The heat map laid over the image as a PNG data: URL. Each pixel is tinted in proportion to its heat, so
    the photo stays visible where the model did not look (a uniform blend hid it under the colour ramp). The
    model saw the image resized to a square, so stretching the map over it is exact. Images under MIN_SIDE
    pixels (an 8x8 digit) are enlarged with visible pixels first, so the map is smooth over them."""
    image = image.convert("RGB")
    w, h = image.size
    if max(w, h) < MIN_SIDE:
        s = MIN_SIDE / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
        image = image.resize((w, h), Image.NEAREST)
    small = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8), "L")
    heat = np.asarray(small.resize((w, h), Image.BILINEAR), np.float32) / 255.0   # (H, W) in 0..1
    weight = (strength * heat)[..., None]                                        # (H, W, 1)
    out = np.asarray(image, np.float32) * (1 - weight) + _jet(heat).astype(np.float32) * weight
    buf = io.BytesIO()
    Image.fromarray(out.round().astype(np.uint8), "RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
