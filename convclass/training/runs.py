"""Run folders: auto-numbered, never overwritten, with a per-epoch metrics.csv."""
from __future__ import annotations

import csv
import json
import re
import shutil
import time
from pathlib import Path

__all__ = ["new_run_dir", "write_metrics_csv", "METRIC_COLUMNS", "heartbeat_writer", "report_lost_steps", "finished",
           "saved_test_metrics", "discard_unsaved"]

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


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


def write_metrics_csv(history: list[dict], path: str | Path) -> None:
    """Rewritten whole from the history each epoch, so a resumed run never holds duplicate rows."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def heartbeat_writer(run_dir: Path, every_s: float = 0.2):
    """Rank 0 notes how far the current epoch got, so a restart can say how many steps it redoes."""
    last = [0.0]

    def beat(epoch: int, step: int) -> None:
        now = time.monotonic()
        if step == 1 or now - last[0] >= every_s:  # a tiny file, throttled: negligible next to a step
            last[0] = now
            tmp = run_dir / ".progress.json.tmp"
            tmp.write_text(json.dumps({"epoch": epoch, "step": step}))
            tmp.replace(run_dir / "progress.json")
    return beat


def report_lost_steps(run_dir: Path, start_epoch: int, log) -> None:
    try:
        prog = json.loads((run_dir / "progress.json").read_text())
    except (OSError, ValueError):
        return
    lost = prog["step"] if prog.get("epoch") == start_epoch else 0
    log(f"restarted from the checkpoint of epoch {start_epoch}: {lost} step(s) of epoch {start_epoch + 1} "
        "were lost and are redone")
    with open(run_dir / "restarts.jsonl", "a") as f:
        f.write(json.dumps({"resumed_at_epoch": start_epoch + 1, "lost_steps": lost, "time": time.time()}) + "\n")


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
    try:
        return json.loads((run_dir / "test_metrics.json").read_text())
    except (OSError, ValueError):
        return None


def discard_unsaved(run_dir: Path) -> None:
    """A run that failed before its first checkpoint holds nothing worth keeping (config.yaml, progress.json):
    its folder goes, so a failed command leaves no run folder behind."""
    if run_dir.is_dir() and not any(run_dir.glob("*.pt")):
        shutil.rmtree(run_dir, ignore_errors=True)
