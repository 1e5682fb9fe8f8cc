"""The divergence guard: a run whose weights or validation loss became inf or nan stops with one line, before
anything non-finite is saved; a training loss that exploded (yet stayed finite) gets a warning."""
from __future__ import annotations

import math
import warnings

from ...checkpoint import nonfinite_tensor
from ...errors import ConvclassError
from ..core import Hook, TrainState

__all__ = ["DivergenceGuard", "diverged"]

EXPLODED = 100.0      # a training loss this many times a uniform guess's has exploded


def diverged(what: str, state: TrainState) -> ConvclassError:
    """The error for a run that diverged in epoch state.epoch (0-based): what happened, what to change, and
    what was kept."""
    run_dir, lr = state.run_dir, state.cfg.lr
    kept = (f"{run_dir}/last.pt holds epoch {state.epoch}, the last finite one" if (run_dir / "last.pt").exists()
            else "no epoch finished, so no checkpoint was written")
    return ConvclassError(f"training diverged: {what}; lower --lr (now {lr:g}) or add --grad-clip 1.0. Nothing "
                          f"non-finite was saved: {kept}")


def exploded(loss: float, epoch: int, num_classes: int, history: list[dict], lr: float) -> str | None:
    """A warning for the first epoch whose loss is orders of magnitude above where every classifier starts (a
    uniform guess, ln K): a run that goes on to finish "successfully" with such a loss has learnt nothing."""
    start = math.log(max(num_classes, 2))
    earlier = [r["train_loss"] for r in history]
    if not loss > EXPLODED * start or any(x > EXPLODED * start for x in earlier):
        return None
    best = f", best so far {min(earlier):.3g}" if earlier else ""
    return (f"the training loss exploded at epoch {epoch + 1}: {loss:.3g}, {loss / start:.0e} times a fresh "
            f"model's {start:.2f}{best}; the weights are likely useless: lower --lr (now {lr:g}) or add "
            "--grad-clip 1.0")


class DivergenceGuard(Hook):
    """First of the on_epoch_end hooks, so it runs before any checkpoint is written."""

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        bad = nonfinite_tensor(state.model.state_dict())  # parameters and buffers (BatchNorm's running_var)
        if bad or (state.validated and not math.isfinite(row["val_loss"])):
            raise diverged(f"{bad or 'the validation loss'} became inf or nan at epoch {state.epoch + 1}", state)
        note = exploded(row["train_loss"], state.epoch, len(state.data.classes), state.history[:-1], state.cfg.lr)
        if note and state.ctx.is_main:
            warnings.warn(note)
