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

from .. import checks
from ..checkpoint import check_format
from ..data.preprocess import Preprocess
from ..errors import ConvclassError
from ..metrics.multilabel import checked_task

__all__ = ["EXPORT_FORMAT", "build_metadata", "sidecar_path", "write_sidecar", "check_metadata", "check_batch",
           "parse_metadata"]

EXPORT_FORMAT = "convclass-export-v1"
REQUIRED = ("arch", "classes", "img_size", "channels", "mean", "std")


def build_metadata(ckpt: dict, pre: Preprocess, source: str, runtime: str, precision: str, batch: int | str) -> dict:
    """Everything a runtime needs from the checkpoint (no weights, no training state)."""
    metrics = {k: float(v) for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, (int, float))}
    try:
        task, thresholds = checked_task(ckpt.get("task"), ckpt.get("thresholds"), len(ckpt["classes"]))
    except checks.Invalid as e:
        raise checks.refusal(e, source, "checkpoint", "use a checkpoint written by convclass") from None
    return {
        "format": EXPORT_FORMAT,
        "runtime": runtime,                  # onnx | torchscript
        "precision": precision,              # fp32 | int8
        "arch": ckpt["arch"],
        "arch_args": dict(ckpt.get("arch_args") or {}),
        "classes": [str(c) for c in ckpt["classes"]],
        **pre.to_dict(),                     # img_size, channels, mean and std per channel (0..1 scale), resize
        "input": "float32 (N, C, H, W) = (uint8 pixels / 255 - mean) / std; grey or RGB order",
        "output": "logits (N, num_classes); " + ("sigmoid gives each label's probability; a label is predicted "
                                                 "at or above its threshold" if task == "multi" else "softmax "
                                                 "gives probabilities"),
        "task": task,                        # single | multi
        **({"thresholds": thresholds} if task == "multi" else {}),  # per label, tuned on validation
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


REEXPORT = "re-export the model with `convclass export`"


def parse_metadata(raw: str | bytes, path) -> dict:
    """JSON text from a model file -> dict, or a one-line error (bad UTF-8, bad JSON, nesting past the stack)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ConvclassError(f"refusing {path}: its convclass metadata is not valid JSON ({str(e)[:80]}); "
                             f"{REEXPORT}") from None


def check_metadata(meta: dict | None, path: str | Path, hint: str = REEXPORT) -> dict:
    """The metadata of an exported file, its format tag and every field used checked for type and range; else a
    one-line error ending in `hint` (what to do).

    Returns a clean copy holding only the fields convclass uses, the preprocessing as a `Preprocess`. Nothing in
    a model file is trusted: its numbers size every buffer allocated for a request and feed the arithmetic of
    every prediction.
    """
    if not isinstance(meta, dict):
        raise ConvclassError(f"{path} has no convclass metadata; {hint}")
    check_format(meta.get("format"), path, current=EXPORT_FORMAT, since="0.1.0")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ConvclassError(f"{path}: metadata lacks {', '.join(missing)}; {hint}")
    try:
        pre = Preprocess.checked(meta)
        batch = meta.get("batch", "dynamic")
        classes = checks.class_names(meta["classes"])
        task, thresholds = checked_task(meta.get("task"), meta.get("thresholds"), len(classes))
        return {"arch": checks.text("arch", meta["arch"]), "classes": classes, "task": task, "thresholds": thresholds,
                "preprocess": pre, "batch": batch if batch == "dynamic" else check_batch(batch, pre, path),
                "metrics": checks.metrics(meta.get("metrics")),
                "name": checks.text("name", meta.get("name", Path(path).stem[:checks.MAX_TEXT]))}
    except checks.Invalid as e:
        raise checks.refusal(e, path, "metadata", hint) from None


def check_batch(batch, pre: Preprocess, path) -> int:
    """A fixed batch size (metadata or graph) bounded so one forward pass stays within MAX_INPUT_VALUES."""
    try:
        return checks.whole("batch", batch, 1, checks.MAX_INPUT_VALUES // (pre.channels * pre.img_size ** 2))
    except checks.Invalid as e:
        raise checks.refusal(e, path, "metadata", REEXPORT) from None
