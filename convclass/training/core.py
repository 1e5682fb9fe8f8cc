"""The training core: a TrainState holding everything a run trains with, and the Hook protocol that features
plug into. The loop that drives them is `fit` (loop.py) over `train_one_epoch` (epoch.py).

The events, in the order they happen (each calls every hook in list order):

    on_fit_start                                   once, after a resume has restored the state
    per epoch:
        on_epoch_start                             the epoch's batches are drawn
        on_step_end            per optimizer step  after forward, backward, step and a per-batch schedule step
        on_train_epoch_end                         the last step is done; validation comes next (when due)
        on_val_progress(done, total)               validation scored `done` of `total` images (first 0)
        on_epoch_end(row)                          row appended to history; may set state.stop
    on_fit_end                                     always, also when the run fails (close files and bars)
    on_test_end(metrics)                           the pipeline scored best.pt on the test split and wrote
                                                   the report (convclass.train, not train() alone)

A hook with state (e.g. EMA's averaged weights) returns it from state_dict(); it is saved in
last.pt as "<name>_state" and handed back to load_state_dict() on --resume, so a resumed run is exact.
A hook may raise StopFit to end training at once, mid-epoch (the LR finder does); nothing of that epoch is kept.
Validation runs every cfg.val_every epochs and after the last (loop.validates); an epoch without it has
state.validated False and NaN val_loss/val_acc in its row, and never counts as an improvement or a bad epoch.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data import PreparedData
from .distributed import DistContext

__all__ = ["Hook", "StopFit", "TrainState", "call"]


class StopFit(Exception):
    """Raised by a hook to end training at once."""


@dataclass(eq=False)
class TrainState:
    cfg: TrainConfig
    data: PreparedData
    model: nn.Module                      # the weights the optimizer trains (no DDP or resize wrapper)
    optimizer: torch.optim.Optimizer
    scheduler: Any                        # a torch LR scheduler, or None
    when: str                             # when it steps: batch | epoch | plateau | never
    scaler: torch.amp.GradScaler
    augment: Callable | None              # on uint8 batches (data/augment.py)
    class_weights: torch.Tensor | None    # --balance loss: weights of the loss, (K,) on device
    sample_weights: torch.Tensor | None   # --balance sampler: drawing weight of each training image, (N,)
    device: torch.device
    steps_per_epoch: int                  # the one batches_per_epoch rule (epoch.py)
    arch_args: dict                       # create_model(cfg.model, **arch_args) rebuilds the model
    precision: str = "fp32"               # --precision resolved (fp32 | bf16 | fp16): every forward's autocast
    ctx: DistContext = DistContext()
    log: Callable[[str], None] = print
    run_dir: Path | None = None
    eval_model: nn.Module | None = None   # the weights validation scores and best.pt keeps; None: model
    hooks: list["Hook"] = field(default_factory=list)
    epoch: int = 0                        # 0-based epoch in progress; after fit, the epochs done
    step: int = 0                         # optimizer steps taken in the whole run
    batch: int = 0                        # optimizer steps taken in this epoch
    loss: float = math.nan                # the last step's mean loss
    running_loss: float = math.nan        # this epoch's mean loss and accuracy so far (this process's share)
    running_acc: float = math.nan
    history: list[dict] = field(default_factory=list)
    best_val: float = -1.0                # best validation accuracy so far
    bad_epochs: int = 0                   # validated epochs since it last improved
    validated: bool = False               # whether the epoch just ended was validated (--val-every)
    improved: bool = False                # whether the epoch just validated set a new best
    stop: str | None = None               # why training ends before cfg.epochs, set by a hook

    def __post_init__(self) -> None:
        if self.eval_model is None:
            self.eval_model = self.model

    @property
    def eval_batch_size(self) -> int:
        # The training chunk: a forward pass without gradients then never holds more than a training step did,
        # so the step's peak is the run's (a fixed 256 took a 224-px EfficientNet past 10 GB in validation).
        return self.cfg.eval_batch_size or self.cfg.micro_batch or self.cfg.batch_size


class Hook:
    """Override the events a feature needs; `name` keys its state in the checkpoint."""
    name = ""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_train_epoch_end(self, state: TrainState) -> None: ...
    def on_val_progress(self, state: TrainState, done: int, total: int) -> None: ...
    def on_epoch_end(self, state: TrainState, row: dict) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...
    def on_test_end(self, state: TrainState, metrics: dict) -> None: ...

    def state_dict(self) -> dict | None:
        return None  # no state to save

    def load_state_dict(self, state: dict) -> None: ...


def call(hooks: list[Hook], event: str, *args) -> None:
    for hook in hooks:
        getattr(hook, event)(*args)
