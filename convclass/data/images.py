"""Reading one image file into a fixed-size uint8 array, the same way for training, evaluation and prediction."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import safeio
from .archive import read_source

__all__ = ["BrokenImage", "open_image", "to_array", "decode_file", "is_grey_mode", "convert_channels"]

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


class BrokenImage(Exception):
    """The file is not a readable image; the message is a short reason (empty file, truncated, not an image)."""


def is_grey_mode(mode: str) -> bool:
    return mode in GREY_MODES


def open_image(src: str | Path | bytes) -> Image.Image:
    """Open and fully decode an image, with EXIF orientation applied; BrokenImage if it cannot be read."""
    try:
        data = src if isinstance(src, bytes) else read_source(src)  # never a FIFO or /dev/zero; archive members
        if not data:
            raise BrokenImage("empty file")
        img = Image.open(io.BytesIO(data))
        img.load()  # force the decode here so truncation is caught now, not during training
        img = ImageOps.exif_transpose(img)
    except BrokenImage:
        raise
    except safeio.Refused as e:
        raise BrokenImage(str(e)) from None
    except UnidentifiedImageError:
        raise BrokenImage("not an image") from None
    except Image.DecompressionBombError as e:
        raise BrokenImage(f"too many pixels ({_bomb_size(str(e))}; decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = "truncated" if "truncated" in str(e).lower() else f"unreadable ({str(e).splitlines()[0][:60]})"
        raise BrokenImage(reason) from None
    return img


def _bomb_size(message: str) -> str:
    """PIL's "Image size (W pixels) exceeds limit of L pixels, ..." as "W pixels, limit L"."""
    m = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", message)
    return f"{int(m[1]):,} pixels, limit {int(m[2]):,}" if m else "over PIL's limit"


def _to_8bit(img: Image.Image) -> Image.Image:
    """Grey or RGB 8-bit image: 16-bit and float greys are rescaled, palettes expanded, alpha dropped."""
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            hi = 65535.0  # a 16-bit file: a dark one must stay dark, so never scale by its own maximum
        elif mode == "F" and a.max() <= 1.0:
            hi = 1.0      # float images stored on the 0..1 scale
        else:
            hi = 65535.0 if a.max() > 255 else 255.0  # "I" (32-bit) holds 8- or 16-bit data; guess from range
        return Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if mode in ("1", "L"):
        return img.convert("L")
    if mode == "LA":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA")
    return img.convert("RGB")  # RGBA, CMYK, YCbCr, ... -> RGB (alpha dropped)


def to_array(img: Image.Image, size: int | None, channels: int | None = None, resize: str = "squash",
             crop_pct: float = 1.0) -> np.ndarray:
    """(H, W, C) uint8; C is 1 for grey sources and 3 otherwise unless `channels` forces it.
    resize (data/preprocess.py): squash scales the whole image to size x size; crop scales the shorter side to
    round(size / crop_pct) and keeps the centre size x size."""
    img = _to_8bit(img)
    if size is not None and resize == "crop":
        side = round(size / crop_pct)
        if min(img.size) != side:
            scale = side / min(img.size)
            img = img.resize((max(side, round(img.width * scale)), max(side, round(img.height * scale))),
                             Image.BILINEAR)
        if img.size != (size, size):
            # floor offsets, as finetune.CenterCrop takes from stored images: the two give the same pixels
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + size, top + size))
    elif size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return convert_channels(a, channels) if channels else a


def convert_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """(..., H, W, C) uint8 to the requested channel count: grey is repeated, RGB is turned grey by luma."""
    c = a.shape[-1]
    if c == channels:
        return a
    if channels == 3 and c == 1:
        return np.repeat(a, 3, axis=-1)
    if channels == 1 and c == 3:
        luma = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(luma + 0.5, 0, 255).astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {c} channels to {channels}")


def decode_file(path: str | Path | bytes, size: int | None, channels: int | None = None,
                resize: str = "squash", crop_pct: float = 1.0) -> np.ndarray:
    return to_array(open_image(path), size, channels, resize, crop_pct)
