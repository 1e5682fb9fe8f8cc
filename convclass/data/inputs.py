"""Images held in memory (PIL images, numpy arrays of any dtype, grey, RGB or RGBA) and image files, as the
uint8 pixels a `Preprocess` describes: the same numbers for a photo in memory as for the same photo on disk.

Pixel values follow the file decoder (images.py): 16-bit data is scaled by 65535, floats on the 0..1 scale by
255 (floats above 1 are taken as 0..255), alpha is dropped. What cannot be an image is refused in one line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import ConvclassError
from .images import BrokenImage, decode_file, to_array
from .preprocess import Preprocess

__all__ = ["image_pixels", "describe", "is_batch"]

ACCEPTED = "a file path, a PIL image or a numpy array (H, W) or (H, W, C) with C 1-4 (or a list of them)"


def is_batch(x) -> bool:
    """A list/tuple of images or a 4-D array (N, H, W, C); anything else is one image."""
    return isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 4)


def describe(x) -> str:
    """What an input was, for the result: the path, or the image's kind and size."""
    if isinstance(x, (str, Path)):
        return str(x)
    if isinstance(x, Image.Image):
        return f"PIL {x.mode} image {x.width}x{x.height}"
    return f"array {tuple(np.shape(x))} {getattr(x, 'dtype', '')}".rstrip()


def image_pixels(x, pre: Preprocess) -> np.ndarray:
    """One image -> uint8 (img_size, img_size, channels), resized by `pre`'s policy (squash or centre crop)."""
    if isinstance(x, (str, Path)):
        try:
            return decode_file(x, pre.img_size, pre.channels, pre.resize, pre.crop_pct)
        except BrokenImage as e:
            raise ConvclassError(f"cannot predict on {x}: {e}") from None
    if isinstance(x, Image.Image):
        img = ImageOps.exif_transpose(x)  # as a file is decoded: the photo the way it is meant to be seen
    elif isinstance(x, np.ndarray):
        a = _to_uint8(_to_hwc(x))
        img = Image.fromarray(a[:, :, 0] if a.shape[-1] == 1 else a)
    elif type(x).__module__.split(".")[0] == "torch":
        raise ConvclassError(f"a torch tensor {tuple(x.shape)} is not taken here: pass x.permute(1, 2, 0).numpy() "
                             "for one (C, H, W) image, or use predict_proba for a uint8 (N, C, H, W) batch")
    else:
        raise ConvclassError(f"cannot predict on a {type(x).__name__}: pass {ACCEPTED}")
    return to_array(img, pre.img_size, pre.channels, pre.resize, pre.crop_pct)


def _to_hwc(a: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, 1 or 3): grey+alpha keeps the grey, RGBA drops the alpha."""
    shape = a.shape
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4) or 0 in a.shape:
        chw = a.ndim == 3 and a.shape[0] in (1, 3, 4) and 0 not in a.shape
        fix = "it looks channels-first (C, H, W): pass a.transpose(1, 2, 0)" if chw else f"pass {ACCEPTED}"
        raise ConvclassError(f"cannot predict on an array of shape {shape}; {fix}")
    return a[:, :, :1] if a.shape[-1] == 2 else a[:, :, :3]


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Pixels of any real dtype -> uint8, by the decoder's rules (16-bit by 65535, 0..1 floats by 255)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ConvclassError(f"cannot predict on an array of dtype {a.dtype}: pixels are whole or real numbers")
    lo, hi = (float(a.min()), float(a.max()))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ConvclassError("cannot predict on an array holding NaN or infinity; pass the image's pixels")
    if np.issubdtype(a.dtype, np.floating):
        top = 1.0 if hi <= 1.0 else 255.0
    else:
        top = 65535.0 if (a.dtype == np.uint16 or hi > 255) else 255.0
    if lo < 0 or hi > top:
        raise ConvclassError(f"cannot predict on pixels from {lo:g} to {hi:g}: pass raw pixels (0..255, 16-bit "
                             "0..65535 or floats 0..1), not normalized ones; the model normalizes them itself")
    return np.clip(a.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
