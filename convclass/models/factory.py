"""Building registered models by name, with their arguments checked against the builder's signature."""
from __future__ import annotations

import difflib
import inspect

import torch.nn as nn

from ..errors import ConvclassError
from . import airnet, classic, efficientnet_lite, tv  # noqa: F401  (importing a model file registers its models)
from .registry import REGISTRY, ModelEntry

__all__ = ["create_model", "list_models", "model_entry", "count_parameters", "bad_model_args"]

COMMON_ARGS = ("num_classes", "in_chans", "img_size")  # every builder takes these; the rest are --model-arg knobs


def list_models() -> list[str]:
    return sorted(REGISTRY)


def model_entry(name: str) -> ModelEntry:
    if name.startswith("timm:"):  # any timm model, resolved on demand (timm is optional)
        from .timm_models import timm_entry
        return timm_entry(name)
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConvclassError(f"unknown model {name!r}{hint}; `convclass models` lists the {len(REGISTRY)} available")
    return REGISTRY[name]


def bad_model_args(entry: ModelEntry, args: dict) -> str | None:
    """Why `args` do not bind to the builder's signature, else None. Only this makes a bad argument: a TypeError
    raised inside a builder is a bug in it and must surface as one, not as the user's mistake."""
    sig = inspect.signature(entry.fn)
    try:
        sig.bind(**args)
    except TypeError as e:
        knobs = [n for n, p in sig.parameters.items() if n not in COMMON_ARGS and p.kind != p.VAR_KEYWORD]
        unknown = [k for k in args if k not in sig.parameters]
        close = difflib.get_close_matches(unknown[0], knobs, 1) if unknown else []
        return f"{e}{f'; did you mean {close[0]}?' if close else ''}; it takes {', '.join(knobs) or 'no knobs'}"
    return None


def create_model(name: str, num_classes: int, in_chans: int = 3, img_size: int = 32, **kwargs) -> nn.Module:
    entry = model_entry(name)
    args = {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size, **kwargs}
    why = bad_model_args(entry, args)
    if why:
        raise ConvclassError(f"model {name}: bad model argument ({why}); check the --model-arg names")
    return entry.fn(**args)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
