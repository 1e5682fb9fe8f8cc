"""Prediction with ONNX Runtime on an exported .onnx file; same preprocessing and output as the PyTorch path."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from .metadata import check_batch, parse_metadata
from .exported import ExportedModel

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
    so.log_severity_level = 4  # fatal only: a refused model is our one-line error, not ORT's log lines besides it
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
        super().__init__(path, parse_metadata(raw, path) if raw else None)
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self._check_input_shape(list(inputs[0].shape))
        self.check_output()

    def _check_input_shape(self, shape: list) -> None:
        """The graph's fixed dimensions must be those the metadata describes; the graph's batch size wins."""
        fixed = [d if isinstance(d, int) else None for d in shape]  # named dimensions are free
        want = [self.channels, self.img_size, self.img_size]
        if len(shape) != 4 or any(d is not None and d != w for d, w in zip(fixed[1:], want)):
            raise ConvclassError(f"refusing {self.path}: its graph takes input {shape} but its metadata describes "
                                 f"(N, {self.channels}, {self.img_size}, {self.img_size}); re-export the model")
        self.fixed_batch = None
        if fixed[0] is not None:
            self.fixed_batch = check_batch(fixed[0], self.preprocess, self.path)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
