"""Run folders: auto-numbered, never overwritten, with a per-epoch metrics.csv."""
from __future__ import annotations

import csv
import re
from pathlib import Path

__all__ = ["new_run_dir", "write_metrics_csv", "METRIC_COLUMNS"]

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
