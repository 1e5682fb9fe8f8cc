"""Named training recipes: presets of TrainConfig fields, applied under the options the user sets explicitly.

`fast` is tuned for time-to-accuracy on a few CPU cores (measurements in docs/fast.md): airbench94's network
and optimisation (arXiv 2404.00498) with the parts that cost wall time on a CPU trimmed.
"""
from __future__ import annotations

from typing import Any

from ..config import TrainConfig
from ..errors import ConvclassError

__all__ = ["RECIPES", "recipe_overrides", "with_recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    "fast": {
        "model": "airbench",
        # Half airbench94's widths in the last two groups: 1.4x the training img/s on 2 busy cores (83 -> 113, batch
        # 512); channels_last: 1.4x over NCHW at batch 512 for both widths (docs/fast.md).
        "model_args": {"widths": "64,128,128", "channels_last": True},
        "optimizer": "sgd",                 # Nesterov (build_optimizer turns it on when momentum > 0)
        "momentum": 0.85,                   # airbench94
        # airbench94: lr 11.5 per 1024 images at momentum 0.85 on a summed loss = 1.5 on a mean loss at batch
        # 1024; scaled linearly to batch 512. Weight decay 0.0153/1024 images -> 1.33e-3 in PyTorch's coupled form.
        "batch_size": 512,
        "lr": 0.75,
        "weight_decay": 1.33e-3,
        "schedule": "onecycle",             # warm-up then anneal, like airbench's triangular schedule
        "epochs": 12,                       # ~81 s each on 2 idle CPU cores at 64,128,128 (docs/fast.md)
        "label_smoothing": 0.2,
        "augment": "flip-crop",             # batch tensor ops: random flip + reflect-padded random crop
        "tta": "flip-translate",            # airbench's 6-view test-time augmentation at the final test
        "val_split": 0.02,                  # a small held-out set: every image not held out trains the model
    },
}


def recipe_overrides(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConvclassError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return dict(RECIPES[name], recipe=name)


def with_recipe(base: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """base, then the recipe named in `overrides` (if any), then the explicit overrides on top."""
    name = overrides.get("recipe")
    if not name:
        return base.update(**overrides)
    preset = recipe_overrides(name)
    if overrides.get("model", preset["model"]) != preset["model"]:
        preset.pop("model_args", None)  # the recipe's knobs belong to its own architecture
    base = base.update(**preset)
    if "model_args" in overrides:
        overrides = {**overrides, "model_args": {**base.model_args, **overrides["model_args"]}}
    return base.update(**overrides)
