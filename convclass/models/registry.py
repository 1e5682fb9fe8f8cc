"""The model registry: adding a model is one decorated function; everything else finds it by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from ..errors import ConvclassError

__all__ = ["register_model", "create_model", "list_models", "model_entry", "count_parameters"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    default_img_size: int      # used when the data does not fix a size
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, default_img_size: int = 64):
    """Decorator: `fn(num_classes, in_chans, img_size, **knobs) -> Classifier` becomes available by name."""
    def wrap(fn):
        key = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelEntry(key, fn, default_img_size, doc[0] if doc else "")
        return fn
    return wrap


def _ensure_loaded() -> None:
    # Importing the families registers them; done lazily so `import convclass` stays cheap.
    from . import airnet, classic, efficientnet_lite, tv  # noqa: F401


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name.startswith("timm:"):  # any timm model, resolved on demand (timm is optional)
        from .timm_models import timm_entry
        return timm_entry(name)
    if name not in _REGISTRY:
        raise ConvclassError(f"unknown model {name!r}; `convclass models` lists the {len(_REGISTRY)} available")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, in_chans: int = 3, img_size: int = 32, **kwargs) -> nn.Module:
    entry = model_entry(name)
    try:
        return entry.fn(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs)
    except TypeError as e:
        raise ConvclassError(f"model {name}: bad model argument ({e}); check --model-arg names") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
