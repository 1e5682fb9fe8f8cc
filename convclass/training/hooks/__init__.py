"""Hooks: each thing a training run does besides forward, backward and step is one module here (the protocol
and the order of events are in ../core.py).

fit.py lists the hooks every run has, in the order they run. A module with a `from_config(state)` function is a
feature the config switches on (e.g. --ema): `feature_hooks` finds every such module, so adding a feature is
adding a file. Features change the weights, so they run first, in the order of their module names.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..core import Hook, TrainState
from .callbacks import Callbacks
from .checkpoint import Checkpoint, restore
from .divergence import DivergenceGuard, diverged
from .early_stopping import EarlyStopping
from .heartbeat import Heartbeat
from .metrics_csv import MetricsCSV
from .progress import Progress
from .tensorboard import TensorBoard

__all__ = ["Callbacks", "Checkpoint", "DivergenceGuard", "EarlyStopping", "Heartbeat", "MetricsCSV", "Progress",
           "TensorBoard", "diverged", "feature_hooks", "restore"]


def feature_hooks(state: TrainState) -> list[Hook]:
    """The hooks of the features state.cfg switches on."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        build = getattr(importlib.import_module(f"{__name__}.{info.name}"), "from_config", None)
        hook = build(state) if build is not None else None
        if hook is not None:
            found.append(hook)
    return found
