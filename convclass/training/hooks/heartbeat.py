"""progress.json in the run folder says how far the current epoch got; a resumed run reads it to say how many
steps were lost (and appends that to restarts.jsonl)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..core import Hook, TrainState

__all__ = ["Heartbeat", "report_lost_steps"]


class Heartbeat(Hook):
    def __init__(self, every_s: float = 0.2):
        self.every_s, self.last = every_s, 0.0

    def on_fit_start(self, state: TrainState) -> None:
        if state.epoch > 0:  # resumed from a checkpoint
            report_lost_steps(state.run_dir, state.epoch, state.log)

    def on_step_end(self, state: TrainState) -> None:
        now = time.monotonic()
        if state.batch == 1 or now - self.last >= self.every_s:  # a tiny file, throttled: negligible next to a step
            self.last = now
            tmp = state.run_dir / ".progress.json.tmp"
            tmp.write_text(json.dumps({"epoch": state.epoch, "step": state.batch}))
            tmp.replace(state.run_dir / "progress.json")


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
