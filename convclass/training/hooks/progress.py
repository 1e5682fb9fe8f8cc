"""The console: a progress bar per epoch on an interactive terminal, and one line per epoch."""
from __future__ import annotations

import sys

from ..core import Hook, TrainState

__all__ = ["Progress"]


class Progress(Hook):
    def __init__(self, bar: bool | None = None):
        self.show_bar = bar
        self.bar = None

    def on_fit_start(self, state: TrainState) -> None:
        if self.show_bar is None:
            self.show_bar = sys.stderr.isatty() and not state.cfg.quiet

    def on_epoch_start(self, state: TrainState) -> None:
        if self.show_bar:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=state.steps_per_epoch, desc=f"epoch {state.epoch + 1}/{state.cfg.epochs}",
                            leave=False, dynamic_ncols=True)

    def on_step_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{state.running_loss:.4f}", acc=f"{state.running_acc:.3f}", refresh=False)
            self.bar.update()

    def on_train_epoch_end(self, state: TrainState) -> None:
        self.on_fit_end(state)

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        state.log(f"epoch {row['epoch']}/{state.cfg.epochs}  train loss {row['train_loss']:.4f} acc "
                  f"{row['train_acc']:.2%}  val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%}  lr "
                  f"{row['lr']:.3g}  {row['seconds']:.1f}s" + ("  *" if state.improved else ""))

    def on_fit_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
