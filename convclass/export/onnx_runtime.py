"""Prediction with ONNX Runtime on an exported .onnx file; same preprocessing and output as the PyTorch path."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from .runtime import ExportedModel

__all__ = ["OnnxModel", "make_session"]


def make_session(path_or_bytes, threads: int | None = None):
    """A CPU InferenceSession with all graph optimizations; `threads` caps intra-op threads (None: all cores)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConvclassError("ONNX models need onnxruntime; pip install onnxruntime") from None
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    so.inter_op_num_threads = 1  # one graph at a time; parallelism comes from intra-op threads
    src = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise ConvclassError(f"cannot load ONNX model {path_or_bytes}: {str(e).splitlines()[0][:160]}") from None


class OnnxModel(ExportedModel):
    runtime = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None):
        path = Path(path)
        if not path.exists():
            raise ConvclassError(f"{path} not found; export a model with `convclass export RUN --format onnx`")
        self.session = make_session(path, threads)
        raw = self.session.get_modelmeta().custom_metadata_map.get("convclass")
        super().__init__(path, json.loads(raw) if raw else None)
        self.input_name = self.session.get_inputs()[0].name
        dim0 = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = dim0 if isinstance(dim0, int) else None  # the graph's word wins over the metadata

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
