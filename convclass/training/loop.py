"""The loop: epochs of training (epoch.py), each followed by validation when due (--val-every) and the hooks
(core.py)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ..data import PreparedData
from ..data.stream import StreamImages, eval_batches
from ..progress import chunks
from . import finetune
from .core import Hook, TrainState, call
from .distributed import DistContext, validate_sharded
from .epoch import train_one_epoch
from .losses import best_score, split_scores
from .tta import tta_logits

__all__ = ["fit", "validate", "validates"]


def fit(state: TrainState, hooks: list[Hook]) -> list[dict]:
    """Train from state.epoch to cfg.epochs, or until a hook sets state.stop; returns the history."""
    state.hooks = hooks
    try:
        call(hooks, "on_fit_start", state)
        while state.epoch < state.cfg.epochs and not state.stop:
            t0 = time.perf_counter()
            train = train_one_epoch(state, hooks)
            state.validated = validates(state.cfg, state.epoch)
            val = {"loss": math.nan, "acc": math.nan}
            if state.validated:
                val, _ = validate(state.eval_model, state.data.val, state.data, state.device, state.eval_batch_size,
                                  state.ctx, precision=state.precision,
                                  progress=lambda done, total: call(hooks, "on_val_progress", state, done, total))
            # the rate this epoch trained with, as --lr names it: with --lr-decay group 0 is the stem's, lr x d^k
            group = state.optimizer.param_groups[0]
            lr = group["lr"] / group.get("lr_scale", 1.0)
            if state.when == "epoch":
                state.scheduler.step()
            elif state.when == "plateau" and state.validated:
                state.scheduler.step(best_score(val))
            row = {"epoch": state.epoch + 1, **train, "val_loss": val["loss"], "val_acc": val["acc"], "lr": lr,
                   "seconds": time.perf_counter() - t0, **({"val_map": val["map"]} if "map" in val else {})}
            state.history.append(row)
            state.improved = state.validated and best_score(val) > state.best_val
            if state.validated:
                state.best_val, state.bad_epochs = ((best_score(val), 0) if state.improved
                                                    else (state.best_val, state.bad_epochs + 1))
            call(hooks, "on_epoch_end", state, row)
            state.epoch += 1
    finally:
        call(hooks, "on_fit_end", state)
    return state.history


def validates(cfg, epoch: int) -> bool:
    """Whether 0-based `epoch` ends with validation: every cfg.val_every-th epoch, and always the last."""
    return (epoch + 1) % cfg.val_every == 0 or epoch + 1 >= cfg.epochs


@torch.no_grad()
def validate(model, split, data: PreparedData, device, batch_size: int,
             ctx: DistContext = DistContext(), tta: str = "none", precision: str = "fp32",
             progress: Callable[[int, int], None] | None = None) -> tuple[dict, torch.Tensor]:
    """Loss and accuracy (and a multi-label split's macro mAP: losses.split_scores) on a split, plus the
    probabilities (N, K). Under DDP each rank scores every
    world-th image and the sums are reduced: the figure covers the whole split, not rank 0's share.
    `precision`: the run's resolved one (TrainState.precision). `progress(done, total)` is told the images
    scored after each batch (a progress bar; not under DDP)."""
    if ctx.enabled:
        return validate_sharded(finetune.input_view(model, data), split, data.mean, data.std, device, batch_size, ctx,
                                precision)
    view = finetune.input_view(model, data)
    if isinstance(split.x, StreamImages):  # decoded per batch in worker processes, as the cache would hold them
        batches = eval_batches(split.x, batch_size, progress=progress)
    else:
        batches = (split.x[i:i + batch_size] for i in chunks(len(split), batch_size, progress))
    logits = [tta_logits(view, xb, data.mean, data.std, device, batch_size, tta, precision) for xb in batches]
    logits = torch.cat(logits) if logits else torch.zeros(0, 0)
    if len(split) == 0:
        return {"loss": float("nan"), "acc": float("nan")}, logits
    return split_scores(logits, split.y)
