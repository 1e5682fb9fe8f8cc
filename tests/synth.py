"""Synthetic image folders for the tests: small, learnable, and written with PIL so every format path is real."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

# One colour per class, so a tiny model separates them in an epoch or two.
CLASS_COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


def rgb_image(colour, size: int = 16, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: a class colour plus noise and a random bright square (so images differ)."""
    rng = np.random.default_rng(seed)
    a = np.clip(np.asarray(colour, np.float32) + rng.normal(0, 25, (size, size, 3)), 0, 255)
    y, x = rng.integers(0, size - 4, 2)
    a[y:y + 4, x:x + 4] = 255
    return a.astype(np.uint8)


def grey_image(level: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """(size, size) uint8 around `level`."""
    rng = np.random.default_rng(seed)
    return np.clip(level + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)


def write_class_folders(root: Path, per_class: int = 12, size: int = 16, classes=None, ext: str = "png",
                        seed: int = 0) -> dict[str, list[Path]]:
    """root/<class>/<i>.<ext> RGB images; returns the files written per class."""
    out = {}
    for ci, name in enumerate(classes or CLASS_COLOURS):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        colour = CLASS_COLOURS.get(name, (60 * ci % 256, 120, 200 - 50 * ci % 200))
        out[name] = []
        for i in range(per_class):
            p = d / f"{name}_{i:03d}.{ext}"
            Image.fromarray(rgb_image(colour, size, seed=seed * 100003 + ci * 1000 + i)).save(p)
            out[name].append(p)
    return out


def write_grey_folders(root: Path, per_class: int = 6, size: int = 16) -> None:
    """root/{dark,light}/ grey PNGs and JPEGs."""
    for ci, (name, level) in enumerate((("dark", 60), ("light", 190))):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(grey_image(level, size, seed=ci * 100 + i), "L").save(d / f"{i}.{'png' if i % 2 else 'jpg'}")


def truncated_jpeg(path: Path, size: int = 16) -> None:
    buf = io.BytesIO()
    Image.fromarray(rgb_image((128, 128, 128), size)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def png16(path: Path, size: int = 16) -> None:
    """A 16-bit greyscale PNG spanning the full 0..65535 range (a diagonal ramp)."""
    ramp = np.linspace(0, 65535, size * size).reshape(size, size).astype(np.uint16)
    Image.fromarray(ramp).save(path)


def rgba_png(path: Path, colour, size: int = 16) -> None:
    a = np.dstack([rgb_image(colour, size), np.full((size, size), 128, np.uint8)])
    Image.fromarray(a, "RGBA").save(path)


def palette_gif(path: Path, colour, size: int = 16) -> None:
    Image.fromarray(rgb_image(colour, size)).convert("P", palette=Image.ADAPTIVE, colors=16).save(path)


def grey_jpeg(path: Path, size: int = 16, level: int = 128) -> None:
    Image.fromarray(grey_image(level, size), "L").save(path, "JPEG")


def exif_rotated_jpeg(path: Path, orientation: int = 6, size: int = 32) -> np.ndarray:
    """A JPEG whose stored pixels have a red left half and blue right half, tagged with EXIF `orientation`.

    Returns the stored (un-rotated) pixels, (size, size, 3) uint8.
    """
    a = np.zeros((size, size, 3), np.uint8)
    a[:, : size // 2] = (255, 0, 0)
    a[:, size // 2:] = (0, 0, 255)
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = orientation  # Orientation tag
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return a


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root (hidden ones included), keyed by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
