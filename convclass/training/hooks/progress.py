"""The console: a progress bar per epoch and one for validation on an interactive terminal, and one line per
epoch."""
from __future__ import annotations

from ...progress import Bar, interactive
from ..core import Hook, TrainState

__all__ = ["Progress"]


class Progress(Hook):
    def __init__(self, bar: bool | None = None):
        self.show_bar = bar
        self.bar = None
        self.val_bar = Bar("validation", False)

    def on_fit_start(self, state: TrainState) -> None:
        if self.show_bar is None:
            self.show_bar = interactive(state.cfg.quiet)
        self.val_bar = Bar("validation", self.show_bar)

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

    def on_val_progress(self, state: TrainState, done: int, total: int) -> None:
        self.val_bar(done, total)

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        self.val_bar.close()
        mean_ap = f" mAP {row['val_map']:.4f}" if "val_map" in row else ""  # multi-label: what best.pt follows
        val = (f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%}{mean_ap}" if state.validated
               else f"not validated (--val-every {state.cfg.val_every})")
        state.log(f"epoch {row['epoch']}/{state.cfg.epochs}  train loss {row['train_loss']:.4f} acc "
                  f"{row['train_acc']:.2%}  {val}  lr {row['lr']:.3g}  {row['seconds']:.1f}s"
                  + ("  *" if state.improved else ""))

    def on_fit_end(self, state: TrainState) -> None:
        self.val_bar.close()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
