"""OpenVINO IR export: the model through convclass's own fp32 ONNX graph (already the checked route), converted
by OpenVINO, saved as model.openvino.xml + .bin with the metadata in the XML's rt_info; batch always dynamic."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConvclassError
from .onnx_export import export_onnx
from .openvino_runtime import MISSING, RT_INFO_KEY, OpenVinoModel, reason
from .parity import check_parity

__all__ = ["export_openvino"]


def export_openvino(model: nn.Module, out: Path, channels: int, img_size: int, meta: dict, ref: np.ndarray,
                    test_x: torch.Tensor) -> dict:
    """Write `out` (.xml) and its .bin, check them against PyTorch's probabilities `ref` on `test_x`; returns the
    parity figures. Nothing is left behind when the check fails."""
    try:
        import openvino as ov
    except ImportError:
        raise ConvclassError(MISSING) from None
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent)
    os.close(fd)
    try:
        export_onnx(model, tmp, channels, img_size, True, meta)
        try:
            graph = ov.convert_model(tmp)
        except Exception as e:  # OpenVINO's own exception types
            raise ConvclassError(f"OpenVINO could not convert the model: {reason(e)}") from None
        graph.set_rt_info(json.dumps(meta), [RT_INFO_KEY])
        ov.save_model(graph, str(out), compress_to_fp16=False)  # fp32 weights: parity within 1e-4
        return check_parity(ref, OpenVinoModel(out).predict_proba(test_x).numpy(), "the OpenVINO export")
    except BaseException:
        for p in (out, out.with_suffix(".bin")):
            p.unlink(missing_ok=True)
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)
