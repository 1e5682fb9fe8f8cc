"""Self-describing checkpoints: plain dicts of tensors and builtins, written atomically, loaded without unpickling code.

A checkpoint holds the weights plus everything needed to use them alone: architecture name and arguments,
class names, preprocessing (size, channels, mean, std) and metrics; training checkpoints add optimizer,
scheduler, scaler and RNG state so `--resume` continues exactly.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import ConvclassError

__all__ = ["save_checkpoint", "load_checkpoint", "resolve_checkpoint", "FORMAT"]

FORMAT = "convclass-checkpoint-v1"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a kill never leaves half a file."""
    path = Path(path)
    payload = {"format": FORMAT, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def resolve_checkpoint(run_or_ckpt: str | Path) -> Path:
    """A run folder means its best.pt (else last.pt); a file is taken as is."""
    p = Path(run_or_ckpt).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).exists():
                return p / name
        raise ConvclassError(f"{p} has no best.pt or last.pt; is it a convclass run folder?")
    if not p.exists():
        raise ConvclassError(f"checkpoint {p} not found; pass a run folder (runs/NAME) or a .pt file")
    return p


def _first_line(msg: str) -> str:
    return next((ln.strip() for ln in msg.splitlines() if ln.strip()), "")[:120]


def _refusal_reason(msg: str) -> str:
    """The line of torch's weights_only error that names what was refused (e.g. `GLOBAL posix.system`)."""
    for key in ("GLOBAL", "Unsupported"):
        for ln in msg.splitlines():
            if key in ln:
                return ln.strip().rstrip(".")[:120]
    return "not plain data"


def load_checkpoint(run_or_ckpt: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = resolve_checkpoint(run_or_ckpt)
    try:
        with warnings.catch_warnings():  # torch's notes on old pickle protocols would add lines to the one error
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():  # a corrupt file, not a refused object
            raise ConvclassError(f"cannot read checkpoint {path}: {_first_line(str(e))}") from None
        raise ConvclassError(f"refusing to load {path}: it holds pickled Python objects, not only tensors and "
                             f"plain data ({_refusal_reason(str(e))}); use a checkpoint written by convclass"
                             ) from None
    except Exception as e:  # truncated zip, garbage bytes (KeyError from the legacy reader), I/O errors
        raise ConvclassError(f"cannot read checkpoint {path} ({type(e).__name__}: {_first_line(str(e))}); "
                             "is it a complete .pt file written by convclass?") from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "arch" not in ckpt:
        raise ConvclassError(f"{path} is not a convclass checkpoint (no model_state/arch); for a bare state dict "
                             "use --weights when fine-tuning")
    return ckpt
