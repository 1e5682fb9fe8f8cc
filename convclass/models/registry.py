"""The model registry: adding a model is one decorated function; `factory.py` builds any of them by name.

This module imports no model file (the model files import it), so the registry and the models never import in
a circle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

__all__ = ["ModelEntry", "register_model", "REGISTRY"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    default_img_size: int      # used when the data does not fix a size
    description: str


REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, default_img_size: int = 64):
    """Decorator: `fn(num_classes, in_chans, img_size, **knobs) -> Classifier` becomes available by name."""
    def wrap(fn):
        key = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[key] = ModelEntry(key, fn, default_img_size, doc[0] if doc else "")
        return fn
    return wrap
