"""The frozen stage at the cost of one forward pass (--freeze backbone, the first stage of --fine-tune).

A frozen backbone in eval mode (finetune.training_view) maps an image to the same features every epoch, so they
are computed once per training image, through the input view evaluation uses, and the head trains on them. The
epoch is otherwise the one epoch.py runs: the same seeded batches, the same optimizer step (step.py: loss, label
smoothing, class weights, micro-batches, clipping, schedule) and the same hook events, so schedules, checkpoints,
resume, EMA and metrics rows see the run they would see end to end. Without augmentation the head ends where it
would end to end, dropout masks included (tests/test_frozen_features.py).

What is kept: the backbone's output after the head's leading layers that have no parameters and draw nothing
(global pooling, flatten): 1280 floats per image for efficientnet_lite0, not its 1280x7x7 map. Dropout and every
layer with parameters run in the head's pass, every step.

With a training augmentation, two views of each image are kept: the image as evaluation sees it and its
horizontal flip (every convclass augmentation flips), and each epoch picks one per image from its seeded
generator. The crops, shifts and colour changes of the augmentation do not reach the frozen stage: each further
view costs another forward pass over the training set, which is what this module saves.

Trained end to end instead, with a note: mixup and cutmix (they mix pixels, not features), DDP, and features
over CACHE_BYTES. The features live for the frozen stage only: they are freed when the backbone unfreezes, and a
resumed run computes them again (they are deterministic, so the resumed run is exact).
"""
from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..data import normalize
from ..models import Classifier
from ..precision import autocast
from . import finetune, probe
from .core import TrainState

__all__ = ["CACHE_BYTES", "FeatureCache", "cached_features"]

CACHE_BYTES = 2 * 2**30  # features of the training set above this: the frozen stage runs end to end
# Layers whose output depends on their input alone (no parameters, no random draws): their output is what is kept.
PLAIN = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten, nn.Identity)


@dataclass(eq=False)
class FeatureCache:
    feats: torch.Tensor  # (views, N, ...): view v of training image n after the head's PLAIN leading layers
    head: nn.Module      # the rest of the head, which trains on them

    def batches(self, batches: list[torch.Tensor], order: torch.Generator, y: torch.Tensor,
                device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(labels, features, target) per batch of image indices. The view of each image is drawn from `order`,
        the epoch's seeded generator, after the batch order: one view cached, one draw that changes nothing."""
        views = torch.randint(len(self.feats), (self.feats.shape[1],), generator=order).to(self.feats.device)
        for idx in batches:
            yb = y[idx].to(device, non_blocking=True)
            at = idx.to(self.feats.device)
            yield yb, self.feats[views[at], at], yb


# TrainState -> its FeatureCache, or None: this frozen stage runs end to end (said once). Weak: gone with the run.
_CACHES: weakref.WeakKeyDictionary[TrainState, FeatureCache | None] = weakref.WeakKeyDictionary()


def cached_features(state: TrainState) -> FeatureCache | None:
    """The features this epoch's head trains on when the whole backbone is frozen (computed in the first frozen
    epoch), else None; call it after finetune.training_view. Frees them once the backbone trains."""
    if not _backbone_frozen(state.model):
        _CACHES.pop(state, None)
        return None
    if state not in _CACHES:
        _CACHES[state] = _build(state)
    return _CACHES[state]


def _backbone_frozen(model: nn.Module) -> bool:
    """A Classifier computing head(features(x)), its features in eval mode, every parameter outside the head
    frozen and some in the head trainable."""
    if (not isinstance(model, Classifier) or type(model).forward is not Classifier.forward
            or model.features.training):
        return False
    head = {id(p) for p in model.head.parameters()}
    trains = [p.requires_grad for p in model.parameters() if id(p) not in head]
    return not any(trains) and any(p.requires_grad for p in model.head.parameters())


def _split_head(head: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the head's PLAIN leading layers, the rest); exact types: a subclass may draw or hold state."""
    layers = list(head) if isinstance(head, nn.Sequential) else []
    k = 0
    while k < len(layers) and type(layers[k]) in PLAIN:
        k += 1
    return nn.Sequential(*layers[:k]), (nn.Sequential(*layers[k:]) if k else head)


def _build(state: TrainState) -> FeatureCache | None:
    cfg = state.cfg
    why = ("mixup and cutmix mix pixels, not features" if cfg.mixup > 0 or cfg.cutmix > 0
           else "not cached under DDP" if state.ctx.enabled else None)
    plain, rest = _split_head(state.model.head)
    views = 1 if state.augment is None else 2
    t0 = time.perf_counter()
    feats = None if why else _extract(state, plain, views)
    if feats is None:
        state.log(f"note: the frozen backbone runs every epoch "
                  f"({why or f'its features would exceed {CACHE_BYTES / 2**30:.0f} GB'})")
        return None
    shown = " (2 views each: as is and flipped)" if views > 1 else ""
    state.log(f"frozen backbone: features of {feats.shape[1]} images{shown} computed once "
              f"({time.perf_counter() - t0:.1f} s); the head trains on them")
    probe.maybe_probe(state, rest, feats)
    return FeatureCache(feats, rest)


@torch.no_grad()
def _extract(state: TrainState, plain: nn.Module, views: int) -> torch.Tensor | None:
    """(views, N, ...) features of the training images, or None when they would exceed CACHE_BYTES. Batches run
    like the training step's (normalised, memory format, autocast) through the model's input view, with the
    head swapped for its PLAIN layers: whatever wraps the model's input applies."""
    model, data, device, x = state.model, state.data, state.device, state.data.train.x
    mean, std = torch.tensor(data.mean, device=device), torch.tensor(data.std, device=device)
    memfmt = torch.channels_last if state.cfg.channels_last else torch.contiguous_format
    view, head, out = finetune.input_view(model, data), model.head, None
    model.head = plain
    try:
        for v in range(views):
            for lo in range(0, len(x), state.eval_batch_size):
                xb = x[lo:lo + state.eval_batch_size].to(device)
                xb = normalize(xb.flip(-1) if v else xb, mean, std).contiguous(memory_format=memfmt)
                with autocast(state.precision, device):
                    f = view(xb)
                if out is None:
                    if views * len(x) * f[0].numel() * f.element_size() > CACHE_BYTES:
                        return None
                    out = f.new_empty((views, len(x), *f.shape[1:]))
                out[v, lo:lo + len(f)] = f
    finally:
        model.head = head
    return out
