"""metrics.csv in the run folder: one row per epoch."""
from __future__ import annotations

import csv
from pathlib import Path

from ..core import Hook, TrainState

__all__ = ["METRIC_COLUMNS", "MetricsCSV", "write_metrics_csv"]

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


def write_metrics_csv(history: list[dict], path: str | Path) -> None:
    """Rewritten whole from the history each epoch, so a resumed run never holds duplicate rows."""
    with open(path, "w", newline="") as f:
        extra = ["val_map"] if any("val_map" in row for row in history) else []  # multi-label runs
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS + extra, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


class MetricsCSV(Hook):
    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        write_metrics_csv(state.history, state.run_dir / "metrics.csv")
