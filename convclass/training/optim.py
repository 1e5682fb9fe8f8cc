"""Optimizers by name. Weight decay is not applied to biases and norm parameters (standard practice)."""
from __future__ import annotations

import functools
import inspect

import torch
import torch.nn as nn

from ..errors import ConvclassError

__all__ = ["OPTIMIZERS", "build_optimizer", "eager"]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "muon")


# Methods torch wraps so that torch.compile does not trace into them. The wrappers import torch._dynamo on their
# first call: 1.1 s of a 2-core machine's start-up, spent before the first training step, although eager training
# never uses it. In eager mode each wrapper only calls the function it wraps (`__wrapped__`), and `step`'s also
# turns gradients off.
_COMPILE_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict", "step")


@functools.cache
def eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of optimizer class `cls` that calls its methods without torch's compile guards (same maths,
    same state dicts, no torch._dynamo import). Our models may be compiled; optimizer steps never are."""
    ns = {}
    for name in _COMPILE_GUARDED:
        method = getattr(cls, name)
        raw = inspect.unwrap(method)  # all layers: an earlier instance may have added a profiling hook on step
        if raw is not method:
            ns[name] = torch.no_grad()(raw) if name == "step" else raw
    return type(cls.__name__, (cls,), {"__module__": cls.__module__, "__doc__": cls.__doc__, **ns})


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9, batch_size: int = 2000) -> torch.optim.Optimizer:
    if name == "muon":  # airbench94_muon: Muon for filters, SGD for the rest (training/muon.py)
        from .muon import MuonSGD, muon_param_groups
        return eager(MuonSGD)(muon_param_groups(model, lr, weight_decay, momentum, batch_size), lr=lr, momentum=momentum)
    groups = _param_groups(model, weight_decay)
    if name == "sgd":
        return eager(torch.optim.SGD)(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name == "adam":
        return eager(torch.optim.Adam)(groups, lr=lr)
    if name == "adamw":
        return eager(torch.optim.AdamW)(groups, lr=lr)
    if name == "rmsprop":
        return eager(torch.optim.RMSprop)(groups, lr=lr, momentum=momentum if momentum < 1 else 0.0)
    if name == "adagrad":
        return eager(torch.optim.Adagrad)(groups, lr=lr)
    raise ConvclassError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
