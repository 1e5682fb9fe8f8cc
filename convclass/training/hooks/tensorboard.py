"""TensorBoard event files in the run folder: losses, accuracies and the learning rate per epoch."""
from __future__ import annotations

from ..core import Hook, TrainState

__all__ = ["TensorBoard"]


class TensorBoard(Hook):
    def __init__(self):
        self.writer = None
        self.start = 0

    def on_fit_start(self, state: TrainState) -> None:
        self.start = state.epoch  # a resumed run drops the events its lost epochs wrote

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        if self.writer is None:  # opened at the first epoch's end: importing TensorBoard is 0.1 s of start-up
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(state.run_dir), purge_step=self.start)
        for key in ("train_loss", "train_acc", "lr") + (("val_loss", "val_acc") if state.validated else ()):
            self.writer.add_scalar(key.replace("_", "/", 1), row[key], row["epoch"])
        self.writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
