"""One optimizer step: forward and backward, optionally in micro-batches (gradient accumulation), gradient
clipping, the update (loss-scaled under fp16) and a per-batch schedule step. Forward passes run under the run's
autocast (precision.py); the weights, their gradients and the optimizer state stay fp32."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ..precision import autocast
from .losses import Loss, asl_settings, loss_function

if TYPE_CHECKING:
    from .core import TrainState

__all__ = ["Diverged", "chunk_bounds", "forward_backward", "optimizer_step"]


class Diverged(Exception):
    """The loss became NaN or infinite."""


def chunk_bounds(n: int, micro_batch: int | None) -> list[tuple[int, int]]:
    """[lo, hi) ranges of at most `micro_batch` images covering n; never a last chunk of one image (BatchNorm
    cannot normalise it: it joins the chunk before)."""
    cuts = list(range(0, n, micro_batch or n or 1))[1:]
    if cuts and n - cuts[-1] < 2:
        cuts.pop()
    return list(zip([0] + cuts, cuts + [n]))


def forward_backward(model, xb: torch.Tensor, target: torch.Tensor, *, micro_batch: int | None, scaler,
                     loss_fn: Loss, precision: str, where: str
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulate the gradient of the batch's mean loss; returns (loss, logits), detached.

    With micro_batch, the batch runs in chunks whose losses are weighted by their share of the batch: the same
    update as one pass for models without BatchNorm, with a fraction of the activation memory (BatchNorm then
    normalises each chunk on its own, like ghost batch norm). Under DDP gradients are all-reduced once, after
    the last chunk. `precision`: resolved, fp32 | bf16 | fp16."""
    bounds = chunk_bounds(len(xb), micro_batch)
    loss, logits = torch.zeros((), device=xb.device), []
    for c, (lo, hi) in enumerate(bounds):
        share = (hi - lo) / len(xb)
        sync = c == len(bounds) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync():
            with autocast(precision, xb.device):
                out = model(xb[lo:hi])
                part = loss_fn(out.float(), target[lo:hi])
            if not torch.isfinite(part):
                raise Diverged(f"loss became {part.item()} at {where}")
            scaler.scale(part * share).backward()
        loss = loss + part.detach() * share
        logits.append(out.detach().float())
    return loss, (torch.cat(logits) if len(logits) > 1 else logits[0])


def optimizer_step(state: TrainState, net: nn.Module, xb: torch.Tensor, target: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of state.model (through `net`, its training view) on a normalised batch; (loss, logits)."""
    cfg, opt, scaler = state.cfg, state.optimizer, state.scaler
    opt.zero_grad(set_to_none=True)
    loss_fn = loss_function(state.data.task == "multi", state.class_weights, cfg.label_smoothing,
                            asl_settings(cfg, state.data.task))
    loss, logits = forward_backward(net, xb, target, micro_batch=cfg.micro_batch, scaler=scaler, loss_fn=loss_fn,
                                    precision=state.precision,
                                    where=f"epoch {state.epoch + 1}, step {state.batch + 1}")
    if cfg.grad_clip:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    scaler.step(opt)
    scaler.update()
    if state.when == "batch":
        state.scheduler.step()
    return loss, logits
