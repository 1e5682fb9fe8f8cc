"""Running exported models: one predictor interface for ONNX Runtime, TorchScript and PyTorch checkpoints.

Only data is loaded unless the caller asks for more: checkpoints weights-only, .onnx graphs (no code), and a
TorchScript file (a program) only with runtime="torchscript".

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
from .metadata import check_metadata, check_output_shape

__all__ = ["ExportedModel", "load_predictor", "predict_images", "detect_runtime", "is_torchscript", "normalize_np",
           "RUNTIMES"]


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
        self.img_size = meta["img_size"]
        self.channels = meta["channels"]
        self.mean = meta["mean"]
        self.std = meta["std"]
        self.metrics = meta["metrics"]
        self.name = meta["name"]
        self.fixed_batch = meta["batch"] if meta["batch"] != "dynamic" else None

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


def _first_line(e: Exception) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)[:160]


def is_torchscript(path: str | Path) -> bool:
    """A TorchScript archive: a zip holding compiled code (code/, constants.pkl) or convclass's TorchScript
    metadata. Read from the zip's directory only; nothing in it is unpickled or compiled."""
    import zipfile
    p = Path(path)
    try:
        if not (p.is_file() and zipfile.is_zipfile(p)):
            return False
        with zipfile.ZipFile(p) as z:
            return any(n.endswith(("/constants.pkl", "extra/convclass.json")) or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def detect_runtime(path: str | Path) -> str:
    """'onnx' for .onnx files, 'torchscript' for TorchScript archives, 'torch' for runs and checkpoints."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return "onnx"
    return "torchscript" if is_torchscript(p) else "torch"


RUNTIMES = ("auto", "torch", "onnx", "torchscript")


def load_predictor(path: str | Path, runtime: str = "auto", device: str = "auto", threads: int | None = None):
    """A predictor for a run folder, checkpoint or .onnx file, or for a TorchScript file when asked for.

    runtime: auto (from the file; never TorchScript), torch (run folder or checkpoint, loaded weights-only),
    onnx (an .onnx file, or the run's export/model.onnx), torchscript (the explicit opt-in: a TorchScript file
    is a program, and loading it runs it).
    """
    if runtime not in RUNTIMES:
        raise ConvclassError(f"--runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    p = Path(path).expanduser()
    found = detect_runtime(p)
    if found == "torchscript" and runtime != "torchscript":
        raise ConvclassError(f"refusing {path}: it is a TorchScript file, which is code that runs when loaded; "
                             "serve or predict with the run folder or an .onnx export instead, or, only if you "
                             "trust the file, pass --runtime torchscript")
    if runtime == "torchscript":
        if found != "torchscript":
            raise ConvclassError(f"--runtime torchscript needs a TorchScript file; {path} is not one "
                                 "(leave out --runtime for run folders, checkpoints and .onnx files)")
        from .torchscript import TorchScriptModel
        return TorchScriptModel(p)
    if runtime == "onnx" and found == "torch":
        cand = (p / "export" / "model.onnx") if p.is_dir() else None
        if cand is None or not cand.exists():
            raise ConvclassError(f"--runtime onnx needs an .onnx file; export one first with "
                                 f"`convclass export {path} --format onnx`")
        p, found = cand, "onnx"
    if runtime == "torch" and found == "onnx":
        raise ConvclassError(f"{path} is an ONNX file; use --runtime onnx (or pass the run folder)")
    if found == "onnx":
        from .onnx_runtime import OnnxModel
        return OnnxModel(p, threads=threads)
    lm = load_model(p, device)
    lm.name = (p.name if p.is_dir() else p.parent.name)
    lm.runtime = "torch"
    return lm


def predict_images(predictor, inputs: list[str], topk: int = 5, batch_size: int = 256
                   ) -> tuple[list[dict], list[tuple[str, str]]]:
    """Same output as convclass.inference.predict: ([{path, top: [(class, prob), ...]}], skipped)."""
    return predict_with(predictor, inputs, topk, batch_size)
