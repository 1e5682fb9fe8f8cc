"""TorchScript export (traced, with the metadata as an extra file) and its predictor.

torch.jit is deprecated in recent PyTorch but still the only single-file format that C++ (libtorch) and older
deployments load without Python; we trace, which handles every registry model (no data-dependent control flow).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConvclassError
from .runtime import ExportedModel

__all__ = ["export_torchscript", "TorchScriptModel", "EXTRA_FILE"]

EXTRA_FILE = "convclass.json"


def export_torchscript(model: nn.Module, path: str | Path, channels: int, img_size: int, meta: dict) -> None:
    model = model.cpu().eval()
    example = torch.zeros(2, channels, img_size, img_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the deprecation notice of torch.jit (see module docstring)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(meta).encode()})


class TorchScriptModel(ExportedModel):
    runtime = "torchscript"

    def __init__(self, path: str | Path):
        extra = {EXTRA_FILE: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            except (RuntimeError, ValueError) as e:
                raise ConvclassError(f"cannot load TorchScript file {path}: {str(e).splitlines()[0][:160]}") from None
        self.module.eval()
        super().__init__(path, json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else None)

    @torch.no_grad()
    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(x)).float().numpy()
