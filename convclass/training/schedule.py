"""Learning-rate schedules by name; each says whether it steps per batch or per epoch."""
from __future__ import annotations

import math

import torch
from torch.optim import lr_scheduler as sch

from ..errors import ConvclassError

__all__ = ["SCHEDULES", "build_scheduler"]

SCHEDULES = ("none", "step", "multistep", "cosine", "onecycle", "triangle", "linear", "plateau")


def build_scheduler(opt: torch.optim.Optimizer, name: str, *, epochs: int, steps_per_epoch: int, lr: float,
                    step_size: int = 30, milestones: list[int] | None = None, gamma: float = 0.1,
                    warmup_epochs: float = 0.0) -> tuple[object | None, str]:
    """Returns (scheduler, when) with when in {'batch', 'epoch', 'plateau', 'never'}."""
    total = max(1, epochs * steps_per_epoch)
    if name == "none":
        return None, "never"
    if name == "step":
        return sch.StepLR(opt, step_size=step_size, gamma=gamma), "epoch"
    if name == "multistep":
        ms = milestones or [int(epochs * 0.5), int(epochs * 0.75)]
        return sch.MultiStepLR(opt, milestones=ms, gamma=gamma), "epoch"
    if name == "cosine":
        warm = min(int(round(warmup_epochs * steps_per_epoch)), total - 1)
        # LambdaLR keeps the state dict free of Python callables (weights_only-safe); the lambda is rebuilt
        # from the config on resume.
        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return sch.LambdaLR(opt, factor), "batch"
    if name == "onecycle":
        # Each group peaks at its own lr (discriminative learning rates); one group: max_lr == lr.
        return sch.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total), "batch"
    if name == "triangle":
        # airbench's: linear from 0.2x up to 1x over the first 23 % of steps, then linear down to 0.07x. Unlike
        # onecycle it leaves momentum alone and ends at a usable rate rather than ~0.
        peak = max(1, int(total * 0.23))

        def tri(step: int) -> float:
            if step < peak:
                return 0.2 + 0.8 * step / peak
            return 1.0 - 0.93 * min(1.0, (step - peak) / max(1, total - peak))
        return sch.LambdaLR(opt, tri), "batch"
    if name == "linear":
        # airbench94_muon's: straight down from 1x to 0 at the last step. A group with "anneal_epochs" (its
        # whitening bias) reaches 0 after that many epochs and stays frozen.
        def lin(ends: int):
            return lambda step: max(0.0, 1.0 - step / ends)
        ends = [max(1, round(g["anneal_epochs"] * steps_per_epoch)) if g.get("anneal_epochs") else total
                for g in opt.param_groups]
        return sch.LambdaLR(opt, [lin(e) for e in ends]), "batch"
    if name == "plateau":
        return sch.ReduceLROnPlateau(opt, mode="max", factor=gamma, patience=max(1, step_size // 10)), "plateau"
    raise ConvclassError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
