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
from .metadata import parse_metadata
from .exported import ExportedModel

__all__ = ["export_torchscript", "TorchScriptModel", "EXTRA_FILE", "read_metadata"]

EXTRA_FILE = "convclass.json"
MAX_META_BYTES = 4 << 20  # 100x the metadata of a 1,000-class model


def export_torchscript(model: nn.Module, path: str | Path, channels: int, img_size: int, meta: dict) -> None:
    model = model.cpu().eval()
    example = torch.zeros(2, channels, img_size, img_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the deprecation notice of torch.jit (see module docstring)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(meta).encode()})


def read_metadata(path: str | Path) -> dict | None:
    """The archive's convclass.json, read with zipfile so it is checked before torch.jit.load runs any code."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            info = next((i for i in z.infolist() if i.filename.endswith(f"extra/{EXTRA_FILE}")), None)
            if info is None:
                return None
            with z.open(info) as f:
                raw = f.read(MAX_META_BYTES + 1)  # bounded whatever the archive claims the size is
    except (OSError, zipfile.BadZipFile) as e:
        raise ConvclassError(f"cannot read TorchScript file {path}: {str(e).splitlines()[0][:160]}") from None
    if len(raw) > MAX_META_BYTES:
        raise ConvclassError(f"refusing {path}: its {EXTRA_FILE} is over {MAX_META_BYTES >> 20} MB; "
                             "re-export the model with `convclass export`")
    return parse_metadata(raw, path)


class TorchScriptModel(ExportedModel):
    """A TorchScript file run by PyTorch. Loading it runs its code: only for files the user chose to trust
    (load_predictor(..., runtime="torchscript"), `--runtime torchscript`), and for exports convclass just wrote."""

    runtime = "torchscript"

    def __init__(self, path: str | Path):
        super().__init__(path, read_metadata(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.module = torch.jit.load(str(path), map_location="cpu")
            except (RuntimeError, ValueError) as e:
                raise ConvclassError(f"cannot load TorchScript file {path}: {str(e).splitlines()[0][:160]}") from None
        self.module.eval()
        self.check_output()

    @torch.no_grad()
    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(x)).float().numpy()
