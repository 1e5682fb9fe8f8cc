"""One pass over the training split: seeded batches, batch augmentation, forward/backward, optimizer step."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data import PreparedData, mix_batch, normalize
from ..data.loader import auto_workers, batch_stream
from . import finetune
from .distributed import DistContext, all_reduce_sum, shard
from .step import forward_backward

__all__ = ["batches_per_epoch", "epoch_seed", "train_one_epoch"]


def epoch_seed(seed: int, epoch: int) -> int:
    # Every epoch draws from its own seed: a run resumed at epoch E replays epoch E exactly.
    return (seed * 1_000_003 + epoch * 7919) % 2**62


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of n images: ceil(n / batch_size), less a last batch of one image (BatchNorm
    cannot train on it)."""
    full = -(-n // batch_size)
    last = n - (full - 1) * batch_size
    return full - 1 if full > 1 and last < 2 else full


def _batches(n: int, batch_size: int, gen: torch.Generator, weights: torch.Tensor | None) -> list[torch.Tensor]:
    order = (torch.multinomial(weights, n, replacement=True, generator=gen) if weights is not None
             else torch.randperm(n, generator=gen))
    return list(order.split(batch_size))[:batches_per_epoch(n, batch_size)]


def train_one_epoch(model, data: PreparedData, opt, scheduler, when: str, cfg: TrainConfig, epoch: int,
                    device: torch.device, augment, class_weights, sample_weights, scaler, progress,
                    ctx: DistContext = DistContext(), heartbeat=None, lookahead=None) -> dict:
    """One pass over the training split. Under DDP every rank walks the same global batches (same seed) and
    takes its 1/world share of each, so the global batch is the same whatever the process count."""
    model = finetune.training_view(model, data, cfg)  # train mode; frozen parts stay in eval
    gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    torch.manual_seed(epoch_seed(cfg.seed, epoch) + 1 + ctx.rank)
    mean = torch.tensor(data.mean, device=device)
    std = torch.tensor(data.std, device=device)
    x_all, y_all = data.train.x, data.train.y
    batches = _batches(len(y_all), cfg.batch_size, gen, sample_weights)
    k = len(data.classes)
    use_amp = cfg.amp and device.type == "cuda"
    memfmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    total_loss, correct, seen = 0.0, 0, 0
    mine = [shard(idx, ctx) for idx in batches]
    images = batch_stream(x_all, mine, augment, epoch, auto_workers(augment, cfg.workers))
    bar = progress(mine, desc=f"epoch {epoch + 1}/{cfg.epochs}")
    for step, (idx, xb) in enumerate(zip(bar, images)):
        yb = y_all[idx].to(device, non_blocking=True)
        xb = normalize(xb.to(device, non_blocking=True), mean, std).contiguous(memory_format=memfmt)
        soft = None
        if cfg.mixup > 0 or cfg.cutmix > 0:
            xb, soft = mix_batch(xb, yb, k, cfg.mixup, cfg.cutmix)
        opt.zero_grad(set_to_none=True)
        loss, logits = forward_backward(model, xb, soft if soft is not None else yb, micro_batch=cfg.micro_batch,
                                        scaler=scaler, class_weights=class_weights,
                                        label_smoothing=cfg.label_smoothing, use_amp=use_amp,
                                        where=f"epoch {epoch + 1}, step {step + 1}")
        if cfg.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        if scheduler is not None and when == "batch":
            scheduler.step()
        if lookahead is not None:
            lookahead.after_step(epoch * len(batches) + step + 1)
        n = len(yb)
        total_loss += loss.item() * n
        correct += int((logits.argmax(1) == yb).sum())
        seen += n
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
        if heartbeat is not None:
            heartbeat(epoch, step + 1)
    if lookahead is not None and epoch + 1 == cfg.epochs:
        lookahead.finish()
    total_loss, correct, seen = all_reduce_sum([total_loss, float(correct), float(seen)], ctx, device)
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}
