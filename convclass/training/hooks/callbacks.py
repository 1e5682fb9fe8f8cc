"""User callbacks, the simple extension point of `train(callbacks=...)`: cb(epoch_row, run_dir) -> bool after
each validated epoch's checkpoint is written (every epoch unless --val-every skips some, so a callback always
reads a real val_acc); one returning True stops training (tuning prunes trials with it)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core import Hook, TrainState

__all__ = ["Callbacks"]


class Callbacks(Hook):
    def __init__(self, callbacks: list[Callable[[dict, Path], bool]]):
        self.callbacks = list(callbacks)

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        if not state.validated:
            return
        if any([cb(row, state.run_dir) for cb in self.callbacks]):  # a list: every callback sees every epoch
            state.stop = "stopped by a callback"
            state.log(state.stop)
