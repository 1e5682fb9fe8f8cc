"""One pass over the training split: seeded batches, batch augmentation, an optimizer step per batch, and the
hooks' on_epoch_start, on_step_end and on_train_epoch_end. While the whole backbone is frozen the batches are its
features, computed once (frozen.py), and the step trains the head on them."""
from __future__ import annotations

import weakref
from collections.abc import Iterator

import torch

from ..data import batch_stream, mix_batch, normalize
from ..errors import ConvclassError
from ..data.loader import auto_workers
from ..data.shards import shard_plan
from ..data.stream import StreamImages, train_batches
from . import finetune, frozen
from ..runtime import release_free_memory
from .core import Hook, TrainState, call
from .distributed import all_reduce_sum, quiet_ddp_warnings, shard, wrap_ddp
from .losses import batch_hits
from .step import optimizer_step

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


def _image_batches(state: TrainState, batches: list[torch.Tensor], rng: torch.Generator
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(labels, normalised images, target) per batch of image indices: augmented, mixed when asked."""
    cfg, data, device = state.cfg, state.data, state.device
    mean = torch.tensor(data.mean, device=device)
    std = torch.tensor(data.std, device=device)
    x_all, y_all = data.train.x, data.train.y
    if isinstance(x_all, StreamImages):  # decoded per batch in worker processes (data/stream.py)
        images = train_batches(x_all, batches, state.augment, state.epoch, cfg.seed, cfg.workers, rng)
    else:
        images = batch_stream(x_all, batches, state.augment, state.epoch, auto_workers(state.augment, cfg.workers),
                              rng)
    memfmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    for idx, xb in zip(batches, images):
        yb = y_all[idx].to(device, non_blocking=True)
        xb = normalize(xb.to(device, non_blocking=True), mean, std).contiguous(memory_format=memfmt)
        target = yb
        if cfg.mixup > 0 or cfg.cutmix > 0:
            xb, target = mix_batch(xb, yb, len(data.classes), cfg.mixup, cfg.cutmix, rng)
        yield yb, xb, target


# TrainState -> (training input size, end to end?) of its last epoch: a change is a new working set
_PHASE: weakref.WeakKeyDictionary[TrainState, tuple] = weakref.WeakKeyDictionary()


def _new_phase(state: TrainState, end_to_end: bool) -> None:
    """Give the heap's free pages back when the working set changes shape (runtime.release_free_memory): the
    backbone unfreezing, or a new progressive size."""
    size = state.augment.size(state.epoch) if hasattr(state.augment, "size") else None
    phase = (size, end_to_end)
    if _PHASE.get(state, phase) != phase:
        release_free_memory()
    _PHASE[state] = phase


# TrainState -> its model under torch.compile, made once per run: a new wrapper each epoch would trace again
_COMPILED: weakref.WeakKeyDictionary[TrainState, torch.nn.Module] = weakref.WeakKeyDictionary()


def _trained_module(state: TrainState) -> torch.nn.Module:
    """The module the steps call: state.model, or (--compile) state.model under torch.compile. The compiled
    wrapper shares the parameters, so the optimizer, checkpoints (saved from state.model, no `_orig_mod.` keys)
    and validation (eager) see the same weights; freezing or unfreezing layers and a new batch shape recompile."""
    if not state.cfg.compile:
        return state.model
    if state not in _COMPILED:
        state.log("compile: torch.compile on the training forward and backward; the first steps compile")
        import torch._inductor.config as inductor
        inductor.fallback_random = True   # dropout draws the eager run's masks: same seeds, same run, exact resume
        _COMPILED[state] = torch.compile(state.model)
    return _COMPILED[state]


def train_one_epoch(state: TrainState, hooks: list[Hook]) -> dict:
    """One pass over the training split. Under DDP every rank walks the same global batches (same seed) and
    takes its 1/world share of each, so the global batch is the same whatever the process count."""
    cfg, data, device, ctx = state.cfg, state.data, state.device, state.ctx
    finetune.set_stage(state.model, cfg, state.epoch, state.log)
    net = finetune.training_view(wrap_ddp(_trained_module(state), ctx, device), data, cfg)  # frozen stay in eval
    cached = frozen.cached_features(state)
    _new_phase(state, cached is None)
    order = torch.Generator().manual_seed(epoch_seed(cfg.seed, state.epoch))
    # Augmentation, mixup/cutmix and dropout draw from one stream, seeded per epoch and rank: on the CPU, the numbers
    # of the code before augmentations took a generator. TODO: a generator of their own, once results may change
    # (dropout draws from the global stream, so a split changes every augmented run of a model with dropout).
    torch.manual_seed(epoch_seed(cfg.seed, state.epoch) + 1 + ctx.rank)
    rng = torch.default_generator
    batches = _batches(len(data.train.y), cfg.batch_size, order, state.sample_weights)
    if getattr(data.train.x, "sequential", False):  # WebDataset shards: each rank reads its own shards in order
        if state.sample_weights is not None:
            raise ConvclassError("--balance sampler draws images at random, but shards are read in order; use "
                                 "--balance loss")
        mine = shard_plan(data.train.x.paths, [len(b) for b in batches], cfg.seed, state.epoch, ctx.rank, ctx.world)
    else:
        mine = [shard(idx, ctx) for idx in batches]
    if cached is not None:
        net, batches = cached.head, cached.batches(mine, order, data.train.y, device)
    else:
        batches = _image_batches(state, mine, rng)
    total_loss, correct, seen = 0.0, 0, 0
    state.batch = 0
    call(hooks, "on_epoch_start", state)
    with quiet_ddp_warnings(ctx):
        for yb, xb, target in batches:
            loss, logits = optimizer_step(state, net, xb, target)
            n = len(yb)
            state.loss = loss.item()
            total_loss += state.loss * n
            correct += batch_hits(logits, yb)
            seen += n
            state.running_loss, state.running_acc = total_loss / seen, correct / seen
            state.step += 1
            state.batch += 1
            call(hooks, "on_step_end", state)
    call(hooks, "on_train_epoch_end", state)
    total_loss, correct, seen = all_reduce_sum([total_loss, float(correct), float(seen)], ctx, device)
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}
