"""Run folders: auto-numbered, never overwritten; whether a run is complete; removing one that saved nothing;
what to do when the disk under one fills up."""
from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

from ..checkpoint import DiskFull, disk_error
from ..errors import ConvclassError
from ..safeio import Refused, read_regular

__all__ = ["new_run_dir", "finished", "saved_test_metrics", "discard_unsaved", "disk_full"]


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """runs/<name>, or runs/<name>-2, -3, ... if taken; created atomically so parallel runs never collide."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
    for i in range(1, 100000):
        cand = root / (name if i == 1 else f"{name}-{i}")
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder name under {root}")


def finished(run_dir: Path, ckpt: dict, cfg) -> str | None:
    """None while the run has epochs to go; else a line saying it is complete and how to train it further."""
    done = ckpt["epoch"] + 1
    if cfg.patience is not None and ckpt["bad_epochs"] >= cfg.patience:
        why = f"stopped early after epoch {done} (no validation improvement for {cfg.patience} epochs)"
    elif done >= cfg.epochs:
        why = f"trained to its last epoch, {done}"
    else:
        return None
    more = (f"`convclass train --resume {run_dir} --epochs {done + 10}` (any number above {done})"
            if cfg.schedule != "onecycle" and why.startswith("trained") else
            f"a new run from its weights: `convclass train --weights {run_dir}/best.pt ...`")
    return f"{run_dir} is already complete ({why}); to train it further: {more}"


def saved_test_metrics(run_dir: Path) -> dict | None:
    """test_metrics.json of a run folder (which may come from anywhere: read bounded, a FIFO or device refused
    in one line rather than read or later written to), or None when it is missing or unreadable as JSON."""
    path = run_dir / "test_metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(read_regular(path))
    except Refused as e:
        raise ConvclassError(f"{path}: {e}; move it away and run the command again") from None
    except ValueError:
        return None


def discard_unsaved(run_dir: Path) -> None:
    """A run that failed before its first checkpoint holds nothing worth keeping (config.yaml, progress.json):
    its folder goes, so a failed command leaves no run folder behind."""
    if run_dir.is_dir() and not any(run_dir.glob("*.pt")):
        shutil.rmtree(run_dir, ignore_errors=True)


def disk_full(e: BaseException, run_dir: Path) -> ConvclassError | None:
    """A full disk (checkpoint, metrics.csv, TensorBoard, ...) as one line: where, how much is free, and how to
    go on once there is space (--resume continues from last.pt and scores a finished run)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        e = DiskFull(disk_error(e.filename or run_dir, e))
    if not isinstance(e, DiskFull):
        return None
    then = (f"continue with `convclass train --resume {run_dir}`" if (run_dir / "last.pt").exists()
            else "run the command again")
    return ConvclassError(f"{e}, then {then}")
