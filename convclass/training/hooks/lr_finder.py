"""The learning-rate range test as a hook (fastai's LRFinder callback): each step trains at a rate `ratio` times
the last one's, from start_lr to end_lr, and the loss is recorded; training stops (StopFit) once the loss has
exploded or the ramp is done. Every parameter group keeps its ratio to the others (Muon's, --lr-decay's): the
rate reported is the one --lr would be, and each group runs at its share of it."""
from __future__ import annotations

import math

from ..core import Hook, StopFit, TrainState

__all__ = ["LRFinder"]


class LRFinder(Hook):
    def __init__(self, start_lr: float, end_lr: float, num_iter: int, smooth: float = 0.9, diverge: float = 4.0):
        self.start, self.num_iter, self.smooth, self.diverge = start_lr, num_iter, smooth, diverge
        self.ratio = (end_lr / start_lr) ** (1 / (num_iter - 1))  # per-step growth factor
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.stopped = False  # True when the loss exploded before end_lr
        self.shares: list[float] = []
        self.avg, self.best = 0.0, math.inf

    def on_fit_start(self, state: TrainState) -> None:
        self.shares = [g["lr"] / state.cfg.lr for g in state.optimizer.param_groups]
        self._set_lr(state, 0)

    def _set_lr(self, state: TrainState, step: int) -> None:
        self.lr = self.start * self.ratio ** step
        for group, share in zip(state.optimizer.param_groups, self.shares):
            group["lr"] = self.lr * share

    def on_step_end(self, state: TrainState) -> None:
        step = len(self.losses)
        self.lrs.append(self.lr)
        self.losses.append(state.loss)
        # The stop test needs a causal average: the loss is "exploding" once the EMA is `diverge` x its best.
        self.avg = self.smooth * self.avg + (1 - self.smooth) * state.loss
        smoothed = self.avg / (1 - self.smooth ** (step + 1))  # bias correction: the EMA starts at 0
        self.best = min(self.best, smoothed)
        if step > 10 and smoothed > self.diverge * self.best:
            self.stopped = True
            raise StopFit
        if step + 1 == self.num_iter:
            raise StopFit
        self._set_lr(state, step + 1)
