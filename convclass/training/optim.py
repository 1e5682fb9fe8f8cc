"""Optimizers by name. Weight decay is not applied to biases and norm parameters (standard practice)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConvclassError

__all__ = ["OPTIMIZERS", "build_optimizer"]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "muon")


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
        return MuonSGD(muon_param_groups(model, lr, weight_decay, momentum, batch_size), lr=lr, momentum=momentum)
    groups = _param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=momentum if momentum < 1 else 0.0)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    raise ConvclassError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
