"""Turning uploaded bytes into model input safely: known formats only, size checked from the header first.

PIL identifies a file from its first bytes and reads width and height without decoding pixels, so a
20000 x 20000 PNG of a few KB is refused before it can allocate gigabytes. Only common raster formats are
accepted: others (EPS would run Ghostscript, SVG is not raster) never reach a decoder.
"""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.images import to_array
from ..data.preprocess import Preprocess
from .limits import RequestError

__all__ = ["ALLOWED_FORMATS", "open_upload", "decode_upload"]

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")


def open_upload(data: bytes, max_pixels: int) -> Image.Image:
    """A lazily opened image whose format and pixel count have been checked; nothing decoded yet."""
    if not data:
        raise RequestError(400, "empty file; choose an image")
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise RequestError(415, f"not an image this server reads (accepted: {', '.join(ALLOWED_FORMATS)})") from None
    except Image.DecompressionBombError as e:  # PIL's own limit (set to ours by serve_model) fired first
        found = re.search(r"\((\d+) pixels\)", str(e))
        n = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise RequestError(413, f"image has {n}; the limit is {max_pixels:,}; send a smaller image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise RequestError(400, f"corrupt image header ({str(e).splitlines()[0][:80]})") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise RequestError(400, "corrupt image: zero width or height")
    if w * h > max_pixels:
        raise RequestError(413, f"image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}; "
                                "send a smaller image")
    return img


def decode_upload(data: bytes, pre: Preprocess, max_pixels: int, thumb: int | None = None
                  ) -> tuple[np.ndarray, Image.Image | None]:
    """(H, W, C) uint8 model input (the checkpoint's Preprocess: the resize and channel handling of evaluation)
    and, when `thumb` is given, an RGB copy of the part the model sees, at most `thumb` pixels a side (for
    overlays). The full-size decode is dropped here."""
    img = open_upload(data, max_pixels)
    try:
        img.load()  # decode now, inside the checks, so truncation is reported here
        img = ImageOps.exif_transpose(img)
        small = None
        if thumb:
            small = _seen(img, pre).convert("RGB")
            small.thumbnail((thumb, thumb))
        return to_array(img, pre.img_size, pre.channels, pre.resize, pre.crop_pct), small
    except Image.DecompressionBombError:
        raise RequestError(413, f"image has too many pixels (limit {max_pixels:,})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        what = "truncated image" if "truncated" in msg.lower() else f"corrupt image ({msg})"
        raise RequestError(400, f"{what}; the file could not be decoded")


def _seen(img: Image.Image, pre: Preprocess) -> Image.Image:
    """The region of `img` the model sees: all of it when squashed, the centre square when cropped, so a heat
    map stretched over it lands where the model looked."""
    if pre.resize != "crop":
        return img
    side = min(img.size) * pre.crop_pct
    left, top = (img.width - side) / 2, (img.height - side) / 2
    return img.crop((round(left), round(top), round(left + side), round(top + side)))
