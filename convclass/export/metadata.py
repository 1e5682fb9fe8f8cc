"""What an exported model says about itself: classes, preprocessing and origin, stored in the file and beside it.

The same dict goes into the ONNX file's metadata_props (key "convclass", JSON), the TorchScript archive's
extra files ("convclass.json"), and a JSON file next to the model, so any runtime can preprocess inputs the
way training did without convclass: input = (pixels / 255 - mean) / std, float32 (N, C, H, W).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..errors import ConvclassError

__all__ = ["EXPORT_FORMAT", "build_metadata", "sidecar_path", "write_sidecar", "check_metadata", "check_output_shape",
           "parse_metadata"]

EXPORT_FORMAT = "convclass-export-v1"
REQUIRED = ("arch", "classes", "img_size", "channels", "mean", "std")


def build_metadata(ckpt: dict, source: str, runtime: str, precision: str, batch: int | str) -> dict:
    """Everything a runtime needs from the checkpoint (no weights, no training state)."""
    pre = ckpt["preprocess"]
    metrics = {k: float(v) for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return {
        "format": EXPORT_FORMAT,
        "runtime": runtime,                  # onnx | torchscript
        "precision": precision,              # fp32 | int8
        "arch": ckpt["arch"],
        "arch_args": dict(ckpt.get("arch_args") or {}),
        "classes": [str(c) for c in ckpt["classes"]],
        "img_size": int(pre["img_size"]),
        "channels": int(pre["channels"]),
        "mean": [float(v) for v in pre["mean"]],   # per channel, 0..1 scale
        "std": [float(v) for v in pre["std"]],
        "input": "float32 (N, C, H, W) = (uint8 pixels / 255 - mean) / std; grey or RGB order",
        "output": "logits (N, num_classes); softmax gives probabilities",
        "batch": batch,                      # "dynamic" or the fixed batch size
        "metrics": metrics,
        "source": str(source),
        "name": Path(source).parent.name if Path(source).suffix == ".pt" else Path(source).name,
        "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def sidecar_path(model_path: str | Path) -> Path:
    """model.onnx -> model.json, model-int8.onnx -> model-int8.json, model.torchscript.pt -> model.torchscript.json"""
    return Path(model_path).with_suffix(".json")


def write_sidecar(model_path: str | Path, meta: dict) -> Path:
    p = sidecar_path(model_path)
    p.write_text(json.dumps(meta, indent=1))
    return p


# Limits on what a model file may ask of this machine. A convclass export never comes near them; a crafted one
# that does (img_size 20000: gigabytes per request) is refused before any image is decoded for it.
MAX_IMG_SIZE = 1024          # pixels per side; 4.6x the ImageNet 224 any registry model is trained at
MAX_INPUT_VALUES = 2 ** 26   # fixed batch x channels x img_size^2: 256 MB of float32 input per forward pass
MAX_CLASSES = 100_000
MAX_TEXT = 1000              # characters in a class name (a CSV label may be longer than a file name)
STD_MIN = 1e-3               # channel_stats floors every std here; below it (0, denormals) inputs become inf/NaN
REEXPORT = "re-export the model with `convclass export`"


class _Invalid(Exception):
    """A field that fails its check: args (key, value, what it must be)."""


def _need(ok: bool, key: str, value, want: str) -> None:
    if not ok:
        raise _Invalid(key, value, want)


def _is_num(v) -> bool:
    """A JSON number Python can format as a float (JSON allows integers of any length)."""
    return isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2 ** 63)


def _text(key: str, v) -> str:
    _need(isinstance(v, str) and 0 < len(v) <= MAX_TEXT, key, v, f"text of 1 to {MAX_TEXT} characters")
    return v


def _whole(key: str, v, lo: int, hi: int) -> int:
    _need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, key, v, f"a whole number from {lo} to {hi}")
    return v


def _per_channel(key: str, v, channels: int, lo: float, hi: float) -> list[float]:
    # NaN fails every comparison and infinity the upper bound, so both are refused here
    _need(isinstance(v, list) and len(v) == channels and all(_is_num(x) and lo <= x <= hi for x in v),
          key, v, f"{channels} finite numbers from {lo:g} to {hi:g} (one per channel)")
    return [float(x) for x in v]


def parse_metadata(raw: str | bytes, path) -> dict:
    """JSON text from a model file -> dict, or a one-line error (bad UTF-8, bad JSON, nesting past the stack)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ConvclassError(f"refusing {path}: its convclass metadata is not valid JSON ({str(e)[:80]}); "
                             f"{REEXPORT}") from None


def check_output_shape(shape: tuple, n: int, k: int, path) -> None:
    """A model must give one score per class its metadata names, or every answer would be wrong or an IndexError."""
    if tuple(shape) != (n, k):
        raise ConvclassError(f"refusing {path}: it outputs shape {tuple(shape)} for {n} image(s) but names {k} "
                             "classes; re-export or retrain the model")


def check_metadata(meta: dict | None, path: str | Path, hint: str = REEXPORT) -> dict:
    """The metadata of an exported file, every field used checked for type and range; else a one-line error
    ending in `hint` (what to do).

    Returns a clean copy holding only the fields convclass uses. Nothing in a model file is trusted: its
    numbers size every buffer allocated for a request and feed the arithmetic of every prediction.
    """
    if not isinstance(meta, dict):
        raise ConvclassError(f"{path} has no convclass metadata; {hint}")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ConvclassError(f"{path}: metadata lacks {', '.join(missing)}; {hint}")
    try:
        return _checked(meta, Path(path).stem[:MAX_TEXT])
    except _Invalid as e:
        key, value, want = e.args
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ConvclassError(f"refusing {path}: its metadata field {key} is {shown}, which must be {want}; "
                             f"{hint}") from None


def _checked(meta: dict, default_name: str) -> dict:
    channels = meta["channels"]
    _need(channels in (1, 3) and isinstance(channels, int) and not isinstance(channels, bool),
          "channels", channels, "1 (grey) or 3 (RGB)")
    img_size = _whole("img_size", meta["img_size"], 1, MAX_IMG_SIZE)
    classes = meta["classes"]
    _need(isinstance(classes, list) and 0 < len(classes) <= MAX_CLASSES
          and all(isinstance(c, str) and 0 < len(c) <= MAX_TEXT for c in classes) and len(set(classes)) == len(classes),
          "classes", classes, f"a list of 1 to {MAX_CLASSES} distinct names of 1 to {MAX_TEXT} characters")
    batch = meta.get("batch", "dynamic")
    if batch != "dynamic":
        _whole("batch", batch, 1, MAX_INPUT_VALUES // (channels * img_size ** 2))
    metrics = meta.get("metrics") or {}
    _need(isinstance(metrics, dict) and len(metrics) <= 100
          and all(isinstance(k, str) and len(k) <= MAX_TEXT and _is_num(v) for k, v in metrics.items()),
          "metrics", metrics, "a mapping of names to numbers")
    return {"arch": _text("arch", meta["arch"]), "classes": list(classes), "img_size": img_size, "channels": channels,
            # pixels are scaled to 0..1 before normalizing, so their mean and std lie in 0..1 too
            "mean": _per_channel("mean", meta["mean"], channels, 0.0, 1.0),
            "std": _per_channel("std", meta["std"], channels, STD_MIN, 1.0),
            "batch": batch, "metrics": {k: float(v) for k, v in metrics.items()},
            "name": _text("name", meta.get("name", default_name))}
