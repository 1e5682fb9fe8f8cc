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

__all__ = ["EXPORT_FORMAT", "build_metadata", "sidecar_path", "write_sidecar", "check_metadata"]

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


def check_metadata(meta: dict | None, path: str | Path) -> dict:
    """The metadata found in an exported file, or a one-line error when it is missing or incomplete."""
    if not isinstance(meta, dict):
        raise ConvclassError(f"{path} has no convclass metadata; export it with `convclass export`")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ConvclassError(f"{path}: metadata lacks {', '.join(missing)}; re-export it with `convclass export`")
    return meta
