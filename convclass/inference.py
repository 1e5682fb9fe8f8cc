"""Using a trained model: rebuild it from its checkpoint alone, preprocess images the way training did, predict."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import load_checkpoint
from .data.augment import normalize
from .data.images import BrokenImage, decode_file
from .errors import ConvclassError
from .models import create_model

__all__ = ["LoadedModel", "decode_files", "load_model", "resolve_device", "expand_inputs", "predict_logits", "predict",
           "predict_with"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConvclassError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConvclassError(f"--device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def decode_files(paths: list[str], img_size: int, channels: int
                 ) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
    """uint8 (N, C, H, W) for the readable files, their paths, and (path, reason) for the rest."""
    arrays, ok, bad = [], [], []
    for p in paths:
        try:
            arrays.append(decode_file(p, img_size, channels))
            ok.append(p)
        except BrokenImage as e:
            bad.append((p, str(e)))
    if not arrays:
        return torch.zeros(0, channels, img_size, img_size, dtype=torch.uint8), ok, bad
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), ok, bad


@dataclass
class LoadedModel:
    model: nn.Module
    arch: str
    classes: list[str]
    img_size: int
    channels: int
    mean: list[float]
    std: list[float]
    device: torch.device
    metrics: dict
    checkpoint_path: str

    def preprocess_files(self, paths: list[str]) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
        """uint8 (N, C, H, W) for the readable files, their paths, and (path, reason) for the rest."""
        return decode_files(paths, self.img_size, self.channels)

    @torch.no_grad()
    def predict_proba(self, x_uint8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 (N, C, H, W) -> probabilities (N, num_classes) on the CPU."""
        logits = predict_logits(self.model, x_uint8, self.mean, self.std, self.device, batch_size)
        return logits.softmax(1)


def load_model(run_or_ckpt: str | Path, device: str = "auto") -> LoadedModel:
    dev = resolve_device(device)
    ckpt = load_checkpoint(run_or_ckpt)
    try:
        model = create_model(ckpt["arch"], **ckpt["arch_args"])
        model.load_state_dict(ckpt["model_state"])
        pre = ckpt["preprocess"]
        fields = {k: pre[k] for k in ("img_size", "channels", "mean", "std")}
        # as build_metadata does for exports: metrics are shown, never computed with, so others are dropped
        metrics = {k: v for k, v in dict(ckpt.get("metrics") or {}).items() if isinstance(v, (int, float))}
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # a hand-edited or mismatched checkpoint
        detail = f"missing key {e}" if isinstance(e, KeyError) else _first_line(str(e))
        raise ConvclassError(f"{run_or_ckpt}: the checkpoint does not describe a usable model ({detail})") from None
    from .export.metadata import check_metadata, check_output_shape  # here: convclass.export imports this module
    # the checks an exported file's metadata gets: these numbers size every buffer of every request
    meta = check_metadata({**fields, "arch": ckpt["arch"], "classes": ckpt.get("classes"), "metrics": metrics,
                           "name": Path(run_or_ckpt).name[:200] or "model"}, run_or_ckpt,
                          hint="use a checkpoint written by convclass (runs/NAME/best.pt)")
    model.to(dev).eval()
    c, s = meta["channels"], meta["img_size"]
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, c, s, s, device=dev))
    except RuntimeError as e:
        raise ConvclassError(f"{run_or_ckpt}: the model cannot run on the {c}x{s}x{s} input its checkpoint "
                             f"describes ({_first_line(str(e))})") from None
    check_output_shape(tuple(out.shape), 1, len(meta["classes"]), run_or_ckpt)
    return LoadedModel(model=model, arch=meta["arch"], classes=meta["classes"], img_size=meta["img_size"],
                       channels=meta["channels"], mean=meta["mean"], std=meta["std"], device=dev,
                       metrics=meta["metrics"], checkpoint_path=str(run_or_ckpt))


def _first_line(msg: str) -> str:
    return next((ln.strip() for ln in msg.splitlines() if ln.strip()), "")[:160]


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, mean, std, device: torch.device,
                   batch_size: int = 256) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float logits (N, K) on the CPU, in eval mode, batched."""
    model.eval()
    m = torch.as_tensor(mean, dtype=torch.float32, device=device)
    s = torch.as_tensor(std, dtype=torch.float32, device=device)
    out = []
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i:i + batch_size].to(device, non_blocking=True), m, s)
        out.append(model(xb).float().cpu())
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


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
            batch_size: int = 256) -> tuple[list[dict], list[tuple[str, str]]]:
    """Top-k predictions for images: ([{path, top: [(class, prob), ...]}], skipped (path, reason))."""
    lm = run_or_ckpt if isinstance(run_or_ckpt, LoadedModel) else load_model(run_or_ckpt, device)
    return predict_with(lm, inputs, topk, batch_size)


def predict_with(predictor, inputs: list[str], topk: int = 5, batch_size: int = 256
                 ) -> tuple[list[dict], list[tuple[str, str]]]:
    """The prediction loop for any predictor with `classes`, `preprocess_files` and `predict_proba`
    (a LoadedModel here, an exported ONNX/TorchScript model in export/runtime.py)."""
    paths = expand_inputs(inputs)
    k = min(topk, len(predictor.classes))
    results, skipped = [], []
    for i in range(0, len(paths), batch_size):
        x, ok, bad = predictor.preprocess_files(paths[i:i + batch_size])
        skipped += bad
        if not ok:
            continue
        p, idx = predictor.predict_proba(x, batch_size).topk(k, dim=1)
        for path, pr, ix in zip(ok, p.tolist(), idx.tolist()):
            results.append({"path": path, "top": [(predictor.classes[j], float(q)) for j, q in zip(ix, pr)]})
    return results, skipped
