"""Writing a model to ONNX (fp32, optionally with a dynamic batch) and quantizing it to int8 with ONNX Runtime."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..data.preprocess import Preprocess
from ..errors import ConvclassError

__all__ = ["export_onnx", "quantize_int8", "set_onnx_metadata", "OPSET"]

OPSET = 17  # supported by every onnxruntime >= 1.14; covers all registry models (LayerNorm is opset 17)


def set_onnx_metadata(path: str | Path, meta: dict) -> None:
    """Store the metadata as metadata_props: one "convclass" JSON entry plus readable per-field entries."""
    import onnx
    m = onnx.load(str(path))
    del m.metadata_props[:]
    entries = {"convclass": json.dumps(meta)}
    shown = ("arch", "classes", "img_size", "channels", "mean", "std", "resize", "crop_pct")
    entries.update({k: json.dumps(meta[k]) for k in shown})
    for k, v in entries.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, str(path))


def export_onnx(model: nn.Module, path: str | Path, channels: int, img_size: int, dynamic_batch: bool,
                meta: dict) -> None:
    """model (eval mode, CPU) -> ONNX taking the normalized float input; batch fixed at 1 unless dynamic."""
    import onnx
    model = model.cpu().eval()
    example = torch.zeros(1, channels, img_size, img_size)
    dyn = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        # The dynamo exporter needs onnxscript; the TorchScript-based one needs nothing more and handles every
        # registry model, so we use it and hide its deprecation notice.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True)
    onnx.checker.check_model(str(path))
    set_onnx_metadata(path, meta)


class _Calibration:
    """Feeds normalized training images to the static quantizer, in batches the model's input accepts."""

    def __init__(self, x_uint8: torch.Tensor, pre: Preprocess, batch: int | None):
        self.x = pre.to_input_np(x_uint8.numpy())
        self.step = batch or 32
        self.i = 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        xb = self.x[self.i:self.i + self.step]
        self.i += self.step
        return {"input": np.ascontiguousarray(xb)}

    def rewind(self):
        self.i = 0


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calib_x: torch.Tensor | None, pre: Preprocess,
                  fixed_batch: int | None, meta: dict) -> str:
    """Static QDQ quantization calibrated on `calib_x` (uint8 images); dynamic when there are no images.

    Returns the method used. Static is the one that speeds up convolutions; dynamic only needs the weights.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise ConvclassError(f"--int8 needs onnxruntime's quantization tools ({e}); pip install onnxruntime") from None
    root = logging.getLogger()
    level = root.level
    # The quantizer logs a warning per 1-D weight (biases, norms) that it quantizes per tensor instead of per
    # channel: expected, and noise to the user.
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="convclass-quant-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = os.path.join(tmp, "pre.onnx")
            quant_pre_process(str(fp32_path), prepared, skip_symbolic_shape=True)
            if calib_x is not None and len(calib_x):
                reader = _Calibration(calib_x, pre, fixed_batch)
                quantize_static(prepared, str(int8_path), reader, per_channel=True, weight_type=QuantType.QInt8,
                                activation_type=QuantType.QUInt8)
                method = f"static (calibrated on {len(calib_x)} training images)"
            else:
                quantize_dynamic(prepared, str(int8_path), weight_type=QuantType.QInt8)
                method = "dynamic (no training images to calibrate on)"
    finally:
        root.setLevel(level)
    set_onnx_metadata(int8_path, meta)
    return method
