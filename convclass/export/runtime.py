"""Running exported models: one predictor interface for ONNX Runtime, TorchScript and PyTorch checkpoints.

Every predictor has the attributes of `convclass.inference.LoadedModel` that prediction needs (arch, classes,
img_size, channels, mean, std, metrics, name) plus `preprocess_files(paths)` and `predict_proba(x_uint8)`, so
`predict_images` and the server treat them alike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConvclassError
from ..inference import decode_files, load_model, predict_with
from .metadata import check_metadata

__all__ = ["ExportedModel", "load_predictor", "predict_images", "detect_runtime", "normalize_np"]


def normalize_np(x_uint8: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32, the same arithmetic as convclass.data.augment.normalize."""
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return ((x_uint8.astype(np.float32) / np.float32(255.0) - m) / s).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ExportedModel:
    """Base of the exported-model predictors; subclasses implement `_logits(x_float32) -> (N, K) array`."""

    runtime = "?"

    def __init__(self, path: str | Path, meta: dict):
        meta = check_metadata(meta, path)
        self.path = str(path)
        self.meta = meta
        self.arch = meta["arch"]
        self.classes = list(meta["classes"])
        self.img_size = int(meta["img_size"])
        self.channels = int(meta["channels"])
        self.mean = list(meta["mean"])
        self.std = list(meta["std"])
        self.metrics = dict(meta.get("metrics") or {})
        self.name = meta.get("name") or Path(path).stem
        batch = meta.get("batch", "dynamic")
        self.fixed_batch = int(batch) if str(batch).isdigit() else None

    def preprocess_files(self, paths: list[str]) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
        """uint8 (N, C, H, W) for the readable files, their paths, and (path, reason) for the rest."""
        return decode_files(paths, self.img_size, self.channels)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_logits(self, x_uint8: torch.Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = x_uint8.numpy() if isinstance(x_uint8, torch.Tensor) else np.asarray(x_uint8)
        step = self.fixed_batch or max(1, batch_size)
        out = [self._logits(normalize_np(x[i:i + step], self.mean, self.std)) for i in range(0, len(x), step)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict_proba(self, x_uint8: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """uint8 (N, C, H, W) -> probabilities (N, num_classes), a CPU float tensor like LoadedModel's."""
        return torch.from_numpy(_softmax(self.predict_logits(x_uint8, batch_size).astype(np.float32)))


def detect_runtime(path: str | Path) -> str:
    """'onnx' for .onnx files, 'torchscript' for TorchScript archives, 'torch' for runs and checkpoints."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return "onnx"
    if p.is_file():
        import zipfile
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                if any(n.endswith("extra/convclass.json") for n in z.namelist()):
                    return "torchscript"
    return "torch"


def load_predictor(path: str | Path, runtime: str = "auto", device: str = "auto", threads: int | None = None):
    """A predictor for a run folder, checkpoint, .onnx or TorchScript file.

    runtime: auto (from the file), torch (checkpoint or TorchScript), onnx (an .onnx file, or the run's
    export/model.onnx).
    """
    p = Path(path).expanduser()
    found = detect_runtime(p)
    if runtime == "onnx" and found == "torch":
        cand = (p / "export" / "model.onnx") if p.is_dir() else None
        if cand is None or not cand.exists():
            raise ConvclassError(f"--runtime onnx needs an .onnx file; export one first with "
                                 f"`convclass export {path} --format onnx`")
        p, found = cand, "onnx"
    if runtime == "torch" and found == "onnx":
        raise ConvclassError(f"{path} is an ONNX file; use --runtime onnx (or pass the run folder)")
    if runtime not in ("auto", "torch", "onnx"):
        raise ConvclassError(f"--runtime must be auto, torch or onnx, not {runtime!r}")
    if found == "onnx":
        from .onnx_runtime import OnnxModel
        return OnnxModel(p, threads=threads)
    if found == "torchscript":
        from .torchscript import TorchScriptModel
        return TorchScriptModel(p)
    lm = load_model(p, device)
    lm.name = (p.name if p.is_dir() else p.parent.name)
    lm.runtime = "torch"
    return lm


def predict_images(predictor, inputs: list[str], topk: int = 5, batch_size: int = 256
                   ) -> tuple[list[dict], list[tuple[str, str]]]:
    """Same output as convclass.inference.predict: ([{path, top: [(class, prob), ...]}], skipped)."""
    return predict_with(predictor, inputs, topk, batch_size)
