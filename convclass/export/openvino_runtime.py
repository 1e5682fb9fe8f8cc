"""Prediction with OpenVINO on an exported IR (model.openvino.xml + .bin); same preprocessing and output as the
PyTorch path. The IR is data (a graph and its weights, no code); its convclass metadata sits in the XML's
rt_info and is checked before the graph is compiled."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from .exported import ExportedModel
from .metadata import REEXPORT, check_batch, parse_metadata

__all__ = ["OpenVinoModel", "RT_INFO_KEY", "openvino_core", "reason"]

RT_INFO_KEY = "convclass"
MISSING = "OpenVINO models need the openvino package; pip install openvino (or `make install`)"


def reason(e: BaseException) -> str:
    """OpenVINO's message is a trace of source locations; its last line says what is wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:160]


def openvino_core():
    try:
        import openvino as ov
    except ImportError:
        raise ConvclassError(MISSING) from None
    return ov.Core()


class OpenVinoModel(ExportedModel):
    runtime = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None):
        path = Path(path)
        if not path.is_file() or not path.with_suffix(".bin").is_file():
            raise ConvclassError(f"{path} (with its .bin beside it) not found; export a model with "
                                 "`convclass export RUN --format openvino`")
        core = openvino_core()
        try:
            graph = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own for unreadable IR
            raise ConvclassError(f"cannot load OpenVINO model {path}: {reason(e)}") from None
        raw = graph.get_rt_info([RT_INFO_KEY]).astype(str) if graph.has_rt_info([RT_INFO_KEY]) else None
        super().__init__(path, parse_metadata(raw, path) if raw else None)
        self._check_input(graph)
        # f32 inference: on CPUs with bf16 OpenVINO would otherwise run in bf16 and miss the parity check
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads or os.cpu_count() or 1)}
        try:
            self.compiled = core.compile_model(graph, "CPU", config)
        except Exception as e:
            raise ConvclassError(f"cannot compile OpenVINO model {path}: {reason(e)}") from None
        self.check_output()

    def _check_input(self, graph) -> None:
        """One 4-D input whose fixed dimensions are those the metadata describes; the graph's batch size wins."""
        if len(graph.inputs) != 1:
            raise ConvclassError(f"refusing {self.path}: it takes {len(graph.inputs)} inputs, not 1; {REEXPORT}")
        shape = graph.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else []
        want = [self.channels, self.img_size, self.img_size]
        if len(dims) != 4 or any(d is not None and d != w for d, w in zip(dims[1:], want)):
            raise ConvclassError(f"refusing {self.path}: its graph takes input {shape} but its metadata describes "
                                 f"(N, {self.channels}, {self.img_size}, {self.img_size}); {REEXPORT}")
        self.fixed_batch = check_batch(dims[0], self.preprocess, self.path) if dims[0] is not None else None

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(np.ascontiguousarray(x))[0])
