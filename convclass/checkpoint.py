"""Self-describing checkpoints: plain dicts of tensors and builtins, written atomically, loaded without unpickling code.

A checkpoint holds the weights plus everything needed to use them alone: architecture name and arguments,
class names, preprocessing (size, channels, mean, std) and metrics; training checkpoints add optimizer,
scheduler, scaler and RNG state so `--resume` continues exactly.
"""
from __future__ import annotations

import errno
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import ConvclassError

__all__ = ["save_checkpoint", "load_checkpoint", "read_tensor_file", "resolve_checkpoint", "nonfinite_tensor",
           "check_finite_weights", "check_loaded", "first_line", "remove_orphaned_temps", "disk_error", "DiskFull", "FORMAT", "check_format"]

FORMAT = "convclass-checkpoint-v1"  # bump the number when a checkpoint changes in a way older readers misread
_TEMP_GLOB = ".*.pt.*.tmp"  # what save_checkpoint's mkstemp names look like: .best.pt.k3j2h1.tmp
_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"  # torch.save writes a zip; older torch a protocol-2+ pickle
_LOOKALIKES = [(b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
               (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
               (b"RIFF", "a WebP image or another RIFF file"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"),
               (b"PK", "a zip archive of another kind")]


class DiskFull(ConvclassError):
    """A write failed for lack of space; callers may add how to continue once there is space."""


def nonfinite_tensor(obj: Any, name: str = "") -> str | None:
    """The key path of the first floating tensor in obj (nested dicts, lists) holding inf or nan, else None."""
    if isinstance(obj, torch.Tensor):
        return (name or "tensor") if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = nonfinite_tensor(value, f"{name}.{key}" if name else str(key))
        if found:
            return found
    return None


def check_finite_weights(state: Any, path: str | Path) -> None:
    """Weights with inf or nan (a diverged run, e.g. BatchNorm's running_var) score at chance: refuse them."""
    flat = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    bad = nonfinite_tensor(flat)  # a state dict is flat: nothing nested (however deep) is walked
    if bad:
        raise ConvclassError(f"refusing to load {path}: its weights hold inf or nan ({bad}), left by a diverged "
                             "run; use an earlier checkpoint or retrain with a lower --lr")


def disk_error(path: str | Path, e: OSError) -> str:
    """One line for a failed write; on a full disk it says how much space is free where."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: {e.strerror or e}"
    folder = Path(path).parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:,.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return f"cannot write {path}: no space left on the device ({free} in {folder}); free some space"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a kill never leaves half a file.
    A tensor holding inf or nan is never written: such a file would load and then predict garbage."""
    path = Path(path)
    bad = nonfinite_tensor(payload)
    if bad:
        raise ConvclassError(f"refusing to write {path}: {bad} holds inf or nan (training diverged); "
                             "nothing was written")
    payload = {"format": FORMAT, **payload}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            full = e.errno in (errno.ENOSPC, errno.EDQUOT)
            raise (DiskFull if full else ConvclassError)(disk_error(path, e)) from None
        raise


def remove_orphaned_temps(folder: str | Path) -> int:
    """Delete the temporary files of checkpoint writes that a kill interrupted; returns how many."""
    gone = 0
    for tmp in Path(folder).glob(_TEMP_GLOB):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            gone += 1
    return gone


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


def first_line(e: BaseException | str, limit: int = 160) -> str:
    """The first non-blank line of an error (its type's name when it has none), cut for a one-line message."""
    text = str(e)
    fallback = type(e).__name__ if isinstance(e, BaseException) else ""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), fallback)[:limit]


def _refusal_reason(msg: str) -> str:
    """The line of torch's weights_only error that names what was refused (e.g. `GLOBAL posix.system`)."""
    for key in ("GLOBAL", "Unsupported"):
        for ln in msg.splitlines():
            if key in ln:
                return ln.strip().rstrip(".")[:120]
    return "not plain data"


def _sniff(path: Path) -> None:
    """Only a zip or a pickle can be a checkpoint: anything else (a photo given where the run folder belongs,
    random bytes) is named for what it is instead of reaching the unpickler."""
    if not path.is_file():  # a FIFO would block the open, /dev/zero never ends
        raise ConvclassError(f"{path} is not a regular file; pass a run folder (runs/NAME) or a .pt file")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise ConvclassError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if head.startswith((_ZIP, _PICKLE)):
        return
    if not head:
        looks = "it is empty"
    elif path.suffix.lower() == ".onnx":
        looks = "it looks like an ONNX model"
    else:
        looks = next((f"it looks like {kind}" for magic, kind in _LOOKALIKES if head.startswith(magic)),
                     "it is neither a zip nor a pickle file")
    hint = "; the run folder or checkpoint comes first, e.g. `convclass predict runs/NAME photo.jpg`" \
        if "image" in looks else "; pass a run folder (runs/NAME) or a .pt file written by convclass"
    raise ConvclassError(f"{path} is not a convclass checkpoint or run folder ({looks}){hint}")


def read_tensor_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only: tensors and plain data, never code; every failure is one line."""
    path = Path(path)
    _sniff(path)
    try:
        with warnings.catch_warnings():  # torch's notes on old pickle protocols would add lines to the one error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():  # a corrupt file, not a refused object
            raise ConvclassError(f"cannot read checkpoint {path}: {first_line(str(e), 120)}") from None
        raise ConvclassError(f"refusing to load {path}: it holds pickled Python objects, not only tensors and "
                             f"plain data ({_refusal_reason(str(e))}); use a checkpoint written by convclass"
                             ) from None
    except Exception as e:  # truncated zip, garbage bytes (KeyError from the legacy reader), I/O errors
        raise ConvclassError(f"cannot read checkpoint {path} ({type(e).__name__}: {first_line(str(e), 120)}); "
                             "is it a complete .pt file written by convclass?") from None


def check_format(tag: Any, path: str | Path, current: str = FORMAT, since: str = "0.1.0") -> None:
    """A file's format tag must be the one this convclass writes (`current`, first written by version `since`);
    a higher number means a newer convclass wrote it. Used for checkpoints and exported models alike."""
    from . import __version__
    stem, _, number = current.rpartition("-v")
    if tag == current:
        return
    version = tag[len(stem) + 2:] if isinstance(tag, str) and tag.startswith(stem + "-v") else ""
    if version.isdigit() and int(version) > int(number):
        raise ConvclassError(f"{path} is in format {tag}, written by a newer convclass than this {__version__} "
                             f"(which reads {current}); upgrade convclass to read it")
    shown = "no format tag" if tag is None else f"format tag {str(tag)[:40]!r}"
    raise ConvclassError(f"{path} has {shown}, not {current}: it was not written by convclass {since} or later; "
                         "use a file that `convclass train` or `convclass export` wrote")


def load_checkpoint(run_or_ckpt: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = resolve_checkpoint(run_or_ckpt)
    ckpt = read_tensor_file(path, map_location)
    check_loaded(ckpt, path)
    return ckpt


def check_loaded(ckpt: Any, path: str | Path) -> None:
    """What every checkpoint must be, read from a file or handed over as a dict: a convclass checkpoint of this
    format whose weights are finite."""
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "arch" not in ckpt:
        raise ConvclassError(f"{path} is not a convclass checkpoint (no model_state/arch); for a bare state dict "
                             "use --weights when fine-tuning")
    check_format(ckpt.get("format"), path)
    check_finite_weights(ckpt["model_state"], path)
