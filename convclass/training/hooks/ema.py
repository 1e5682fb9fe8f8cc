"""--ema DECAY: an exponential moving average of the weights (Polyak averaging; timm's ModelEmaV3), updated after
every optimizer step. Validation, best.pt and so the final test use the averaged weights; training goes on with
the raw ones. BatchNorm's running statistics are averaged with the weights (its step counter is copied), so the
averaged model is consistent. Its weights and update count travel in last.pt, so a resumed run is exact.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..core import Hook, TrainState

__all__ = ["EMA", "from_config"]


def from_config(state: TrainState) -> EMA | None:
    return EMA(state.model, state.cfg.ema) if state.cfg.ema is not None else None


class EMA(Hook):
    name = "ema"

    def __init__(self, model: nn.Module, decay: float):
        self.model, self.decay, self.updates = model, decay, 0
        self.averaged = copy.deepcopy(model).eval().requires_grad_(False)
        # (averaged, live) tensor pairs, made once: state_dict() tensors share storage with the modules, and the
        # optimizer and load_state_dict update them in place, so each step need not rebuild two dicts.
        now = model.state_dict()
        self.pairs = [(avg, now[name]) for name, avg in self.averaged.state_dict().items()]

    def current_decay(self) -> float:
        # Warm-up: at full decay the first thousand steps' average would still be mostly the initial weights.
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def on_fit_start(self, state: TrainState) -> None:
        state.eval_model = self.averaged

    @torch.no_grad()
    def on_step_end(self, state: TrainState) -> None:
        keep = self.current_decay()
        for avg, now in self.pairs:
            if avg.is_floating_point():
                avg.lerp_(now, 1.0 - keep)  # avg <- keep * avg + (1 - keep) * now
            else:
                avg.copy_(now)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"weights": self.averaged.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
