"""--patience N: stop once validation accuracy has not improved for N validations (epochs, unless
--val-every skips some)."""
from __future__ import annotations

from ..core import Hook, TrainState

__all__ = ["EarlyStopping"]


class EarlyStopping(Hook):
    def __init__(self, patience: int):
        self.patience = patience

    def on_fit_start(self, state: TrainState) -> None:
        self._check(state, state.epoch)  # a resumed run that had stopped stays stopped

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        self._check(state, state.epoch + 1)

    def _check(self, state: TrainState, next_epoch: int) -> None:
        if state.bad_epochs >= self.patience and next_epoch < state.cfg.epochs and not state.stop:
            every = state.cfg.val_every
            state.stop = (f"early stopping: no validation improvement for {self.patience} "
                          + ("epochs" if every == 1 else f"validations (one every {every} epochs)"))
            state.log(state.stop)
