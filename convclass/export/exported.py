"""`ExportedModel`: the base of the predictors for exported files (ONNX Runtime, TorchScript).

It holds what the file's metadata says (checked first, format tag included) and runs the same preprocessing as
the PyTorch path on numpy arrays; subclasses only turn float input into logits.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import first_line as _first_line
from ..checks import check_output_shape
from ..data.preprocess import Preprocess
from ..errors import ConvclassError
from ..inference import HasPreprocess
from .metadata import check_metadata

__all__ = ["ExportedModel"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ExportedModel(HasPreprocess):
    """Base of the exported-model predictors; subclasses implement `_logits(x_float32) -> (N, K) array`.

    A subclass validates the metadata (this __init__) before it loads the model, then calls `check_output`.
    """

    runtime = "?"

    def __init__(self, path: str | Path, meta: dict | None):
        meta = check_metadata(meta, path)
        self.path = str(path)
        self.meta = meta
        self.arch = meta["arch"]
        self.classes = meta["classes"]
        self.preprocess: Preprocess = meta["preprocess"]
        self.metrics = meta["metrics"]
        self.name = meta["name"]
        self.fixed_batch = meta["batch"] if meta["batch"] != "dynamic" else None
        self.task, self.thresholds = meta["task"], meta["thresholds"]  # multi: sigmoid, labels at thresholds

    def check_output(self) -> None:
        """One forward pass on a blank input: the model must take the input its metadata describes and give one
        score per class, or every later answer would be wrong (or an IndexError) rather than refused now."""
        n = self.fixed_batch or 1
        x = np.zeros((n, self.channels, self.img_size, self.img_size), np.float32)
        try:
            shape = np.shape(self._logits(x))
        except Exception as e:  # runtimes raise their own types; any failure here means a mismatched file
            raise ConvclassError(f"refusing {self.path}: it cannot run on the {self.channels}x{self.img_size}x"
                                 f"{self.img_size} input its metadata describes ({_first_line(e)})") from None
        check_output_shape(shape, n, len(self.classes), self.path)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_logits(self, x_uint8: torch.Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = x_uint8.numpy() if isinstance(x_uint8, torch.Tensor) else np.asarray(x_uint8)
        step = self.fixed_batch or max(1, batch_size)
        out = [self._logits(self.preprocess.to_input_np(x[i:i + step])) for i in range(0, len(x), step)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict_proba(self, x_uint8: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """uint8 (N, C, H, W) -> probabilities (N, num_classes), a CPU float tensor like LoadedModel's."""
        z = torch.from_numpy(self.predict_logits(x_uint8, batch_size).astype(np.float32))
        return z.sigmoid() if self.task == "multi" else torch.from_numpy(_softmax(z.numpy()))
