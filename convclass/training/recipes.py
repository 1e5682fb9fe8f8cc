"""Named training recipes: presets of TrainConfig fields, applied under the options the user sets explicitly.

`fast` (airbench94_muon) and `fast-sgd` (airbench94, arXiv 2404.00498) are tuned for time-to-accuracy on a few
CPU cores, with the parts that cost memory or wall time on a CPU changed; measurements in docs/fast.md.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig, check_values
from ..data.augment import progressive_sizes

__all__ = ["DEFAULT_PRETRAINED", "RECIPES", "recipe_line", "recipe_overrides", "stages", "training_sizes",
           "with_recipe"]

DEFAULT_PRETRAINED = "finetune"  # the recipe of a --pretrained run that names none (--recipe none: no preset)

RECIPES: dict[str, dict[str, Any]] = {
    "fast": {
        # airbench94_muon (94 % on CIFAR-10 in 8 epochs on a GPU), run in fp32 on the CPU; docs/fast.md measures it.
        "model": "airbench",
        # airbench94's widths; channels_last is 1.2-1.8x NCHW for this net on the CPU. airbench94_muon's head:
        # weights of std 1, logits scaled by 1/width.
        "model_args": {"widths": "64,256,256", "channels_last": True, "scale": 1 / 256, "head_std": 1.0},
        # Muon for the filters (lr 0.24), Nesterov SGD (momentum 0.85) for shifts, whitening bias and head at
        # airbench's rates; decoupled weight decay 2e-6 per image (training/muon.py).
        "optimizer": "muon",
        "lr": 0.24,
        "momentum": 0.85,
        "weight_decay": 2e-6,
        # airbench's batch of 2000, run as 16 chunks of 125 images (gradient accumulation): its learning rates
        # hold unchanged, and the activations of 125 images are all that is ever in memory.
        "batch_size": 2000,
        "micro_batch": 125,
        "schedule": "linear",               # 1x -> 0; the whitening bias -> 0 within 3 epochs
        "epochs": 8,                        # 90.4 % on CIFAR-10 in 16.3 min on 2 cores; 12 gave only 90.65 %
        "label_smoothing": 0.2,
        "augment": "alt-flip-translate",    # batch tensor ops: 2 px reflect-padded translation, alternating flips
        "tta": "flip-translate",            # airbench's 6-view test-time augmentation at the final test
        "val_split": 0.02,                  # a small held-out set: every image not held out trains the model
    },
    "fast-sgd": {
        # airbench94 (before Muon): SGD with lookahead and a triangular schedule, 15 epochs: 91.24 % in 24.9 min on
        # 2 cores, peak 1.15 GB (docs/fast.md); --epochs 10 --micro-batch 256: 90.80 % in 17.1 min.
        "model": "airbench",
        "model_args": {"widths": "64,256,256", "channels_last": True},
        "optimizer": "sgd",                 # Nesterov (build_optimizer turns it on when momentum > 0)
        "momentum": 0.85,
        # airbench94: lr 11.5 per 1024 images at momentum 0.85 on a summed loss = 1.5 on a mean loss at batch
        # 1024, scaled linearly to batch 256; its weight decay 0.0153/1024 images -> 1.33e-3 in PyTorch's coupled
        # form.
        "batch_size": 256,
        "micro_batch": 128,                 # 2 x 128 per step: 1.15 GB peak where one 256 piece took 1.8 GB, ~1 % slower
        "lr": 0.375,
        "weight_decay": 1.33e-3,
        "schedule": "triangle",             # airbench's: 0.2x -> 1x over 23 % of the steps -> 0.07x
        "epochs": 15,                       # a CPU budget of 27 min; airbench's GPU run stops at 9.9
        "label_smoothing": 0.2,
        "augment": "alt-flip-translate",
        "lookahead": True,
        "tta": "flip-translate",
        "val_split": 0.02,
    },
    "finetune": {
        # Pretrained weights on a folder of photos (the default with --pretrained); docs/finetune.md measures it.
        # The model is the user's choice, so this recipe sets no model, and no size: evaluation runs at the
        # weights' own (224 for efficientnet_lite0), training below it early on (rrc-flip's progressive sizes).
        "optimizer": "adamw",
        "lr": 2e-3,                         # the head's; earlier layer groups get lr x 0.3^k (--lr-decay)
        "lr_decay": 0.3,
        "weight_decay": 0.01,               # decoupled (AdamW); none on biases and norms
        "schedule": "onecycle",             # one cycle across both stages: the head-only epoch is its warm-up
        "label_smoothing": 0.1,
        # twice the steps of the default 64 on a small folder, and the activations of 32 images at 224 px
        "batch_size": 32,
        # run as 4 chunks of 8: EfficientNet-Lite0 at 224 px keeps ~70 MB per image for backward, so a quarter of
        # the batch's activations; with BatchNorm frozen (below) the chunks add up to the batch's own update
        # (dropout masks aside). Peak RSS on 1,000 photos at 224 px: 2.12 GB, 3.05-3.16 GB in chunks of 16
        # (issue 15: <= 2.5 GB; docs/finetune.md)
        "micro_batch": 8,
        "augment": "rrc-flip",              # torchvision's RandomResizedCrop (area 0.25-1) + flip, progressive
        "epochs": 4,
        "fine_tune": [1, 3],                # head only (on cached features), then all layers; --epochs N: 1, N-1
        "head_probe": True,                 # the head starts as a fitted linear probe (training/probe.py)
        # BatchNorm keeps the ImageNet statistics (eval mode; its scale and shift still train): batch statistics
        # of 16-image chunks at the smaller progressive sizes moved the features under the fitted head, and
        # validation fell from 79.8 % after the head-only epoch to 65 % after the first all-layer one
        # (docs/finetune.md); the same fix as docs/finetune.md's CIFAR-10 transfer run
        "freeze_bn": True,
    },
    "none": {},                             # --recipe none: the plain defaults, also with --pretrained
}


def recipe_overrides(name: str) -> dict[str, Any]:
    check_values({"recipe": name})  # one of config.Recipe, which tests/test_config.py holds to RECIPES
    return dict(RECIPES[name], recipe=name)


def stages(epochs: int) -> list[int]:
    """finetune's --fine-tune for a run of `epochs`: one head-only epoch (on cached features it costs one forward
    pass), the rest on all layers; a single epoch trains all layers, as a one-epoch fine-tune is expected to."""
    return [1, epochs - 1] if epochs > 1 else [0, 1]


def with_recipe(base: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """base, then the recipe named in `overrides` (if any), then the explicit overrides on top; every option
    checked before the recipe is looked up, so a bad one is named as given.

    With --pretrained and no recipe named anywhere, the default is DEFAULT_PRETRAINED, under everything set
    explicitly: the overrides and whatever `base` (a YAML file) sets away from the defaults. The recipe that ran is
    recorded (finetune, or none for the opt-out), so a saved config.yaml re-runs the same settings."""
    overrides = check_values(overrides)
    name, explicit = overrides.get("recipe"), overrides
    if not name and base.recipe is None and overrides.get("pretrained", base.pretrained):
        name = DEFAULT_PRETRAINED
        explicit = {**_set_in(base), **overrides, "recipe": name}
    if not name:
        return base.update(**_follow_epochs(base.recipe, overrides))
    preset = recipe_overrides(name)
    if "model" in preset and explicit.get("model", preset["model"]) != preset["model"]:
        preset.pop("model_args", None)  # the recipe's knobs belong to its own architecture
    base = base.update(**preset)
    if "model_args" in explicit:
        explicit = {**explicit, "model_args": {**base.model_args, **explicit["model_args"]}}
    return base.update(**_follow_epochs(name, explicit))


def _follow_epochs(name: str | None, explicit: dict[str, Any]) -> dict[str, Any]:
    """--epochs N under finetune without --fine-tune splits the N epochs (stages), rather than the recipe's split
    (which sets epochs to its own sum) overruling the N the user asked for."""
    if name == "finetune" and "epochs" in explicit and "fine_tune" not in explicit:
        return {**explicit, "fine_tune": stages(explicit["epochs"])}
    return explicit


def _set_in(cfg: TrainConfig) -> dict[str, Any]:
    """The options of cfg away from their defaults: what a YAML file set."""
    default = TrainConfig()
    return {k: v for k, v in cfg.to_dict().items() if v != getattr(default, k)}


def recipe_line(cfg: TrainConfig) -> str | None:
    """The log line naming a default recipe, with the way out."""
    if cfg.recipe == DEFAULT_PRETRAINED and cfg.pretrained:
        return f"recipe: {DEFAULT_PRETRAINED} (default with --pretrained; --recipe none for plain settings)"
    return None


def training_sizes(cfg: TrainConfig, model: nn.Module, size: int, channels: int) -> list[int] | None:
    """rrc-flip's training size per epoch: progressive over the all-layers stage (or the whole run), when the model
    takes smaller inputs (not the flattening heads of cnn3 and its kind); `size` throughout otherwise. None for
    the other augmentations (they keep the stored size)."""
    if cfg.augment != "rrc-flip":
        return None
    first = cfg.fine_tune[0] if cfg.fine_tune else 0
    sizes = progressive_sizes(size, cfg.epochs, first)
    if cfg.freeze == "backbone" or (min(sizes) < size and not _takes(model, min(sizes), channels)):
        return [size]
    return sizes


def _takes(model: nn.Module, size: int, channels: int) -> bool:
    """Whether one blank image of size x size runs through the model (eval mode: no statistics move)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, channels, size, size, device=device))
        return True
    except RuntimeError:
        return False
    finally:
        model.train(was)
