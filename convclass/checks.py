"""Checks for what convclass reads from model files (checkpoints, export metadata): nothing in them is trusted.

Their numbers size every buffer allocated for a request and feed the arithmetic of every prediction, so each field
is checked for type and range before use. A failed check raises `Invalid(key, value, want)`; the caller turns it
into one line naming the file and what to do (`refusal`).
"""
from __future__ import annotations

from pathlib import Path

from .errors import ConvclassError

__all__ = ["Invalid", "need", "is_num", "text", "whole", "per_channel", "class_names", "display_labels",
           "display_names", "metrics", "refusal", "check_output_shape", "MAX_IMG_SIZE", "MAX_INPUT_VALUES",
           "MAX_CLASSES", "MAX_TEXT", "STD_MIN"]

# Limits on what a model file may ask of this machine. A convclass model never comes near them; a crafted one
# that does (img_size 20000: gigabytes per request) is refused before any image is decoded for it.
MAX_IMG_SIZE = 1024          # pixels per side; 4.6x the ImageNet 224 any registry model is trained at
MAX_INPUT_VALUES = 2 ** 26   # fixed batch x channels x img_size^2: 256 MB of float32 input per forward pass
MAX_CLASSES = 100_000
MAX_TEXT = 1000              # characters in a class name (a CSV label may be longer than a file name)
STD_MIN = 1e-3               # channel_stats floors every std here; below it (0, denormals) inputs become inf/NaN


class Invalid(Exception):
    """A field that fails its check: args (key, value, what it must be)."""


def need(ok: bool, key: str, value, want: str) -> None:
    if not ok:
        raise Invalid(key, value, want)


def is_num(v) -> bool:
    """A JSON number Python can format as a float (JSON allows integers of any length)."""
    return isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2 ** 63)


def text(key: str, v) -> str:
    need(isinstance(v, str) and 0 < len(v) <= MAX_TEXT, key, v, f"text of 1 to {MAX_TEXT} characters")
    return v


def whole(key: str, v, lo: int, hi: int) -> int:
    need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, key, v, f"a whole number from {lo} to {hi}")
    return v


def per_channel(key: str, v, channels: int, lo: float, hi: float) -> list[float]:
    # NaN fails every comparison and infinity the upper bound, so both are refused here
    need(isinstance(v, (list, tuple)) and len(v) == channels and all(is_num(x) and lo <= x <= hi for x in v),
         key, v, f"{channels} finite numbers from {lo:g} to {hi:g} (one per channel)")
    return [float(x) for x in v]


def class_names(v) -> list[str]:
    need(isinstance(v, list) and 0 < len(v) <= MAX_CLASSES
         and all(isinstance(c, str) and 0 < len(c) <= MAX_TEXT for c in v) and len(set(v)) == len(v),
         "classes", v, f"a list of 1 to {MAX_CLASSES} distinct names of 1 to {MAX_TEXT} characters")
    return list(v)


def display_labels(v, k: int) -> list[str] | None:
    """Optional display names, one per class (they may repeat: ImageNet has two "crane"s); None when absent."""
    if v is None:
        return None
    need(isinstance(v, list) and len(v) == k and all(isinstance(c, str) and 0 < len(c) <= MAX_TEXT for c in v),
         "class_names", v, f"a list of {k} names (one per class) of 1 to {MAX_TEXT} characters")
    return list(v)


def display_names(obj) -> list[str]:
    """What to show for each class of a model, checkpoint or predictions dict: its `class_names` when it has them
    (data/names.py), else its `classes`, which stay the keys labels are matched by."""
    get = obj.get if isinstance(obj, dict) else (lambda key: getattr(obj, key, None))
    names = get("class_names")
    return list(names) if names is not None else list(get("classes"))


def metrics(v) -> dict[str, float]:
    v = v or {}
    need(isinstance(v, dict) and len(v) <= 100
         and all(isinstance(k, str) and len(k) <= MAX_TEXT and is_num(x) for k, x in v.items()),
         "metrics", v, "a mapping of names to numbers")
    return {k: float(x) for k, x in v.items()}


def refusal(e: Invalid, path: str | Path, what: str, hint: str) -> ConvclassError:
    """The one-line error for a failed check of field `e` in the `what` (metadata, preprocess, ...) of `path`."""
    key, value, want = e.args
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ConvclassError(f"refusing {path}: its {what} field {key} is {shown}, which must be {want}; {hint}")


def check_output_shape(shape: tuple, n: int, k: int, path) -> None:
    """A model must give one score per class its file names, or every answer would be wrong or an IndexError."""
    if tuple(shape) != (n, k):
        raise ConvclassError(f"refusing {path}: it outputs shape {tuple(shape)} for {n} image(s) but names {k} "
                             "classes; re-export or retrain the model")
