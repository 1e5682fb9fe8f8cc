"""--lookahead: airbench's lookahead (arXiv 2404.00498, after Zhang et al. 2019): every few steps a slow copy of
the weights moves toward the fast ones, and the fast weights jump back to it.

The pull grows as 0.95^5 * (t/T)^3: early training runs untouched, the last steps are averaged (like an EMA
whose horizon lengthens as the learning rate falls), and the run ends on the slow copy. BatchNorm running
statistics are averaged with the weights, so the final model is consistent.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..core import Hook, TrainState

__all__ = ["Lookahead", "from_config"]


def from_config(state: TrainState) -> Lookahead | None:
    return Lookahead(state.model, state.cfg.epochs * state.steps_per_epoch) if state.cfg.lookahead else None


class Lookahead(Hook):
    name = "lookahead"

    def __init__(self, model: nn.Module, total_steps: int, every: int = 5):
        self.model, self.total, self.every = model, max(1, total_steps), every
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay(self, step: int) -> float:
        return 0.95 ** 5 * min(1.0, step / self.total) ** 3

    @torch.no_grad()
    def pull(self, decay: float) -> None:
        """slow <- decay * slow + (1 - decay) * fast; fast <- slow."""
        for k, v in self.model.state_dict().items():
            if k in self.slow:
                self.slow[k].lerp_(v, 1.0 - decay)
                v.copy_(self.slow[k])

    def after_step(self, step: int) -> None:
        """`step`: optimizer steps taken so far in the whole run (1-based)."""
        if step % self.every == 0:
            self.pull(self.decay(step))

    def finish(self) -> None:
        """End of training: the model becomes the slow weights."""
        self.pull(1.0)

    def on_step_end(self, state: TrainState) -> None:
        self.after_step(state.step)

    def on_train_epoch_end(self, state: TrainState) -> None:
        if state.epoch + 1 == state.cfg.epochs:  # before the last validation, so it scores the slow weights
            self.finish()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.slow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in self.slow.items():
            v.copy_(state[k])
