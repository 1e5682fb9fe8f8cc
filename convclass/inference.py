"""Using a trained model: rebuild it from its checkpoint alone, preprocess images the way training did, predict."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import checks
from .data.inputs import describe, image_pixels, is_batch
from .data.preprocess import Preprocess
from .errors import ConvclassError
from .metrics.multilabel import checked_task, labels_above
from .models import model_from_checkpoint
from .precision import autocast, resolve_precision

__all__ = ["LoadedModel", "HasPreprocess", "Prediction", "load_model", "resolve_device", "expand_inputs",
           "predict_logits", "predict", "predict_with"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConvclassError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConvclassError(f"--device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


class HasPreprocess:
    """What every predictor (LoadedModel here, the exported models in export/exported.py) exposes of its
    `preprocess`, and how it reads image files."""

    preprocess: Preprocess

    img_size = property(lambda self: self.preprocess.img_size)
    channels = property(lambda self: self.preprocess.channels)
    mean = property(lambda self: list(self.preprocess.mean))
    std = property(lambda self: list(self.preprocess.std))

    def preprocess_files(self, paths: list[str]) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
        """uint8 (N, C, H, W) for the readable files, their paths, and (path, reason) for the rest."""
        return self.preprocess.decode_files(paths)

    def preprocess_images(self, images: list) -> torch.Tensor:
        """Paths, PIL images or numpy arrays (at least one) -> uint8 (N, C, H, W) through `preprocess` (size,
        channels, resize policy), as the files of training were decoded."""
        arrays = [image_pixels(x, self.preprocess) for x in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def predict(self, images, topk: int = 5, batch_size: int = 256) -> Prediction | list[Prediction]:
        """Labelled top-k for one image or several: a file path, a PIL image, a numpy array (H, W) or (H, W, C) of
        any dtype (grey, RGB, RGBA; 16-bit; floats 0..1), or a list of them (a 4-D array is a batch). One image
        gives a Prediction, a list gives a list; each input goes through this model's own preprocessing."""
        if not (isinstance(topk, int) and not isinstance(topk, bool) and topk >= 1):
            raise ConvclassError(f"topk must be a whole number of at least 1, not {topk!r}")
        items = list(images) if is_batch(images) else [images]
        if not items:
            return []
        names = checks.display_names(self)
        names = names if names != list(self.classes) else None
        probs = self.predict_proba(self.preprocess_images(items), batch_size)
        p, idx = probs.topk(min(topk, len(self.classes)), 1)
        out = [Prediction([(self.classes[j], float(q)) for j, q in zip(ix, pr)], describe(item),
                          [names[j] for j in ix] if names else None, above.get("labels"))
               for item, pr, ix, above in zip(items, p.tolist(), idx.tolist(), _above(self, probs))]
        return out if is_batch(images) else out[0]


@dataclass(frozen=True)
class Prediction:
    """One image's top-k classes, most probable first."""
    top: list[tuple[str, float]]       # (class, probability)
    source: str                        # the path, or the in-memory image's kind and size
    names: list[str] | None = None     # display names of top's classes, when the model has them
    labels: list[tuple[str, float]] | None = None  # multi-label: every (label, probability) at its threshold or above

    label = property(lambda self: self.top[0][0])   # the most probable class
    prob = property(lambda self: self.top[0][1])    # and its probability


@dataclass
class LoadedModel(HasPreprocess):
    model: nn.Module
    arch: str
    classes: list[str]
    preprocess: Preprocess
    device: torch.device
    metrics: dict
    checkpoint_path: str
    config: dict | None = None   # the training run's settings, as the checkpoint recorded them
    precision: str = "fp32"      # resolved --precision: the autocast of its forward passes (precision.py)
    class_names: list[str] | None = None  # display names, one per class (checks.display_names)
    task: str = "single"                  # multi: sigmoid per label, answered at `thresholds` (metrics/multilabel.py)
    thresholds: list[float] | None = None

    @torch.no_grad()
    def predict_proba(self, x_uint8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 (N, C, H, W) -> probabilities (N, num_classes) on the CPU: softmax, or per-label sigmoid."""
        z = _logits(self.model, x_uint8, self.preprocess, self.device, batch_size, self.precision)
        return z.sigmoid() if self.task == "multi" else z.softmax(1)


def load_model(run_or_ckpt: str | Path, device: str = "auto", precision: str = "auto") -> LoadedModel:
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    model, pre, classes, ckpt = model_from_checkpoint(run_or_ckpt, dev)
    # as build_metadata does for exports: metrics are shown, never computed with, so others are dropped
    raw = ckpt.get("metrics")
    numbers = {k: v for k, v in raw.items() if isinstance(v, (int, float))} if isinstance(raw, dict) else {}
    try:
        metrics = checks.metrics(numbers)
        class_names = checks.display_labels(ckpt.get("class_names"), len(classes))
        task, thresholds = checked_task(ckpt.get("task"), ckpt.get("thresholds"), len(classes))
    except checks.Invalid as e:
        raise checks.refusal(e, run_or_ckpt, "checkpoint", "use a checkpoint written by convclass") from None
    config = ckpt.get("config")
    return LoadedModel(model=model, arch=ckpt["arch"], classes=classes, preprocess=pre, device=dev, metrics=metrics,
                       checkpoint_path=str(run_or_ckpt), config=config if isinstance(config, dict) else None,
                       precision=precision, class_names=class_names, task=task, thresholds=thresholds)


def _above(predictor, probs: torch.Tensor) -> list[dict]:
    """Per image, {"labels": [(label, prob) at or above its threshold, most probable first]} for a multi-label
    predictor, else {}."""
    if getattr(predictor, "task", "single") != "multi":
        return [{}] * len(probs)
    return [{"labels": found} for found in labels_above(probs.numpy(), predictor.classes, predictor.thresholds)]


def _logits(model: nn.Module, x: torch.Tensor, pre: Preprocess, device: torch.device, batch_size: int,
            precision: str = "fp32") -> torch.Tensor:
    model.eval()
    with autocast(precision, device):
        out = [model(pre.to_input(x[i:i + batch_size], device, non_blocking=True)).float().cpu()
               for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, mean, std, device: torch.device,
                   batch_size: int = 256, precision: str = "fp32") -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 logits (N, K) on the CPU, in eval mode, batched, under the autocast of
    `precision` (resolved: fp32 | bf16 | fp16)."""
    return _logits(model, x, Preprocess.for_batch(x, mean, std), device, batch_size, precision)


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given, folders searched recursively for images, globs expanded; in a stable order."""
    paths: list[str] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                paths += [os.path.join(root, f) for f in sorted(files)
                          if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTS]
        elif p.exists():
            paths.append(str(p))
        else:
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                raise ConvclassError(f"{item}: no such file, folder or matching glob")
            paths += [m for m in matches if Path(m).is_file()]
    if not paths:
        raise ConvclassError(f"no images found in {' '.join(inputs)}")
    return paths


def predict(run_or_ckpt: str | Path | LoadedModel, inputs: list[str], topk: int = 5, device: str = "auto",
            batch_size: int = 256, precision: str = "auto") -> tuple[list[dict], list[tuple[str, str]]]:
    """Top-k predictions for images: ([{path, top: [(class, prob), ...]}], skipped (path, reason)); with
    display names (checks.display_names) each result has `names` too, one per entry of `top`."""
    lm = run_or_ckpt if isinstance(run_or_ckpt, LoadedModel) else load_model(run_or_ckpt, device, precision)
    return predict_with(lm, inputs, topk, batch_size)


def predict_with(predictor, inputs: list[str], topk: int = 5, batch_size: int = 256
                 ) -> tuple[list[dict], list[tuple[str, str]]]:
    """The prediction loop for any predictor with `classes`, `preprocess_files` and `predict_proba`
    (a LoadedModel here, an exported ONNX/TorchScript model in export/exported.py)."""
    paths = expand_inputs(inputs)
    k = min(topk, len(predictor.classes))
    names = checks.display_names(predictor)
    names = names if names != list(predictor.classes) else None
    results, skipped = [], []
    for i in range(0, len(paths), batch_size):
        x, ok, bad = predictor.preprocess_files(paths[i:i + batch_size])
        skipped += bad
        if not ok:
            continue
        probs = predictor.predict_proba(x, batch_size)
        p, idx = probs.topk(k, dim=1)
        for path, pr, ix, above in zip(ok, p.tolist(), idx.tolist(), _above(predictor, probs)):
            results.append({"path": path, "top": [(predictor.classes[j], float(q)) for j, q in zip(ix, pr)], **above})
            if names:
                results[-1]["names"] = [names[j] for j in ix]
    return results, skipped
