"""The learning-rate range test (Smith 2017, "Cyclical learning rates"; fastai's `lr_find`).

Train a throw-away copy of the model for a few hundred mini-batches while the learning rate grows
exponentially from `start_lr` to `end_lr`; record the smoothed loss; stop once it explodes. The steps are the
training loop's own (training/epoch.py), driven by the LRFinder hook (training/hooks/lr_finder.py). A good learning
rate sits where the loss falls fastest ("steepest") or a little way into the longest downhill stretch
("valley", fastai's default, less fooled by noise).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..errors import ConvclassError

__all__ = ["LRFindResult", "lr_find", "lr_range_test", "suggest_steepest", "suggest_valley", "plot_lr_find",
           "resolve_auto_lr"]

METHODS = ("valley", "steepest")


@dataclass
class LRFindResult:
    lrs: list[float]            # learning rate used at each step
    losses: list[float]         # smoothed training loss (centred moving average, so the curve does not lag)
    raw_losses: list[float]
    steepest: float
    valley: float
    suggestion: float           # the one picked by `method`
    method: str
    stopped_early: bool         # True when the loss exploded before end_lr
    plot: Path | None = None


def centred_average(values: list[float], half: int) -> list[float]:
    """Mean over steps i-half..i+half (fewer at the ends). The EMA used for the stop test lags the curve by
    1/(1-smooth) steps, which would move both suggestions to larger learning rates."""
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half):i + half + 1]
        out.append(sum(window) / len(window))
    return out


def _longest_descent(losses: list[float]) -> tuple[int, int]:
    """(start, end) of the longest decreasing subsequence of the curve: its main downhill stretch."""
    n = len(losses)
    run = [1] * n  # run[i]: length of the longest decreasing subsequence ending at i
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end, start = i, max(0, i - run[i])
    return start, end


def _first_rise(losses: list[float], rise: float = 0.2) -> int:
    """Index where the loss, having fallen by 10%+, first climbs back by `rise` of its fall: the first bump."""
    low = losses[0]
    for i, v in enumerate(losses):
        low = min(low, v)
        fall = losses[0] - low
        if fall > 0.1 * abs(losses[0]) and v > low + rise * fall:
            return i
    return len(losses) - 1


def suggest_steepest(lrs: list[float], losses: list[float]) -> float:
    """The LR where the smoothed loss falls fastest against log(lr), on the main descent before the first bump.

    Past the first bump the loss is unstable: a noisy dip there can look steeper than the real descent."""
    start, end = _longest_descent(losses)
    lo, hi = max(1, start), min(len(losses) - 1, end + 1, _first_rise(losses) + 1)
    best, best_i = math.inf, lo
    for i in range(lo, hi):
        slope = (losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
        if slope < best:
            best, best_i = slope, i
    return lrs[best_i]


def suggest_valley(lrs: list[float], losses: list[float]) -> float:
    """fastai's valley: the longest downhill stretch, then a point half of its first third in (cautious)."""
    start, end = _longest_descent(losses)
    third = (end - start) / 3
    return lrs[min(len(lrs) - 1, start + int(third) + int(third / 2))]


def lr_range_test(model: nn.Module, data, cfg: TrainConfig, device: torch.device, *, start_lr: float = 1e-7,
                  end_lr: float = 10.0, num_iter: int = 200, smooth: float = 0.9, diverge: float = 4.0,
                  method: str = "valley") -> LRFindResult:
    """Run the range test on a copy of `model` (the original is untouched): the training loop's own steps with
    cfg's optimizer (all its parameter groups), loss, augmentation, mixup and micro-batches, the learning rate
    set by the LRFinder hook."""
    from ..training.core import StopFit
    from ..training.epoch import train_one_epoch
    from ..training.hooks.lr_finder import LRFinder
    from ..training.setup import build_state
    from ..training.step import Diverged
    if method not in METHODS:
        raise ConvclassError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if not (0 < start_lr < end_lr):
        raise ConvclassError(f"need 0 < --start-lr < --end-lr, got {start_lr:g} and {end_lr:g}")
    if num_iter < 10:
        raise ConvclassError(f"--num-iter {num_iter} is too few steps to read a curve from; use 100 or more")
    lr = cfg.lr if isinstance(cfg.lr, (int, float)) and cfg.lr > 0 else 1e-3  # sets the groups' ratios only
    cfg = cfg.update(lr=lr, schedule="none")  # the finder sets every rate
    state = build_state(cfg, data, copy.deepcopy(model).to(device), {}, device, log=lambda msg: None)
    finder = LRFinder(start_lr, end_lr, num_iter, smooth=smooth, diverge=diverge)
    state.hooks = [finder]
    finder.on_fit_start(state)
    try:
        while True:  # small data sets are cycled through, each pass an epoch with its own order
            train_one_epoch(state, state.hooks)
            state.epoch += 1
    except StopFit:
        pass
    except Diverged:  # the loss became inf or nan: as exploded as it gets
        finder.stopped = True
    lrs, raw = finder.lrs, finder.losses
    if len(raw) < 10:
        raise ConvclassError(f"the loss exploded after {len(raw)} steps, before the range test could read a "
                             f"curve; lower --start-lr (now {start_lr:g})")
    losses = centred_average(raw, max(2, num_iter // 40))
    steep, valley = suggest_steepest(lrs, losses), suggest_valley(lrs, losses)
    return LRFindResult(lrs=lrs, losses=losses, raw_losses=raw, steepest=steep, valley=valley,
                        suggestion=valley if method == "valley" else steep, method=method,
                        stopped_early=finder.stopped)


def plot_lr_find(res: LRFindResult, path: str | Path, title: str = "") -> Path:
    from ..plotting import subplots  # a figure of its own: a notebook's pyplot backend is left alone
    fig, ax = subplots(figsize=(6, 4))
    ax.plot(res.lrs, res.raw_losses, color="0.8", lw=0.8, label="loss")
    ax.plot(res.lrs, res.losses, color="C0", label="smoothed loss")
    i_s, i_v = res.lrs.index(res.steepest), res.lrs.index(res.valley)
    ax.plot(res.steepest, res.losses[i_s], "o", color="C3", label=f"steepest {res.steepest:.2g}")
    ax.plot(res.valley, res.losses[i_v], "s", color="C2", label=f"valley {res.valley:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = max(res.losses[0], min(res.losses) * 2)  # keep the explosion from flattening the curve
    ax.set_ylim(min(res.losses) * 0.9, top * 1.1)
    ax.set_title(title or "LR range test")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def lr_find(config: TrainConfig | None = None, *, plot: str | Path | None = None, start_lr: float = 1e-7,
            end_lr: float = 10.0, num_iter: int = 200, method: str = "valley", **overrides) -> LRFindResult:
    """The Python API behind `convclass lr-find`: cfg's data and starting model, set up as `train` would (recipe,
    pretrained weights and their input plan, channels_last), the range test, and its plot.

    `plot`: PNG path; default <runs_dir>/lr-find-<data>-<model>.png.
    """
    from ..training.setup import build_model, load_data, resolve_config, start_process
    cfg = resolve_config(config, overrides)
    _, device, log = start_process(cfg)
    data = load_data(cfg, log)
    model, _ = build_model(cfg, data, device, log)
    res = lr_range_test(model, data, cfg, device, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                        method=method)
    if plot is None:
        plot = Path(cfg.runs_dir) / f"lr-find-{data.name}-{cfg.model}.png"
    res.plot = plot_lr_find(res, plot, title=f"LR range test: {data.name}, {cfg.model}, {cfg.optimizer}")
    return res


def resolve_auto_lr(cfg: TrainConfig, log=print) -> TrainConfig:
    """`lr: auto` (flag or YAML) -> run the range test and return cfg with the suggested float lr."""
    if not (isinstance(cfg.lr, str) and cfg.lr.lower() == "auto"):
        return cfg
    res = lr_find(cfg.update(lr=1e-3))
    log(f"lr-find: suggested lr {res.suggestion:.3g} ({res.method}; steepest {res.steepest:.3g}), "
        f"plot {res.plot}")
    return cfg.update(lr=float(f"{res.suggestion:.3g}"))
