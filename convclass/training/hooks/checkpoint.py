"""Checkpoints: best.pt when validation improved (the validated weights, EMA's when it is on, without training
state), then last.pt (the trained weights, optimizer, schedule, RNG and every hook's state), so `--resume`
continues exactly."""
from __future__ import annotations

import random
from collections.abc import Callable

import torch

from ...checkpoint import save_checkpoint
from ...errors import ConvclassError
from ..core import Hook, TrainState

__all__ = ["Checkpoint", "payload", "restore", "resume_only"]


def payload(state: TrainState, row: dict) -> dict:
    cfg, data = state.cfg, state.data
    hooks = {f"{h.name}_state": s for h in state.hooks if (s := h.state_dict()) is not None}
    return {
        "arch": cfg.model, "arch_args": state.arch_args, "model_state": state.model.state_dict(),
        "classes": data.classes, "class_names": data.class_names,  # display names (data/names.py) or None
        "preprocess": data.preprocess.to_dict(),  # size, channels, statistics and resize policy
        "metrics": {"val_acc": row["val_acc"], "val_loss": row["val_loss"], "epoch": row["epoch"],
                    **({"val_map": row["val_map"]} if "val_map" in row else {})},
        "task": data.task,  # single | multi: softmax or sigmoid outputs (multi adds "thresholds" after the test)
        "epoch": state.epoch, "history": state.history, "best_val": state.best_val, "bad_epochs": state.bad_epochs,
        "config": cfg.to_dict(), "optimizer_state": state.optimizer.state_dict(),
        "scheduler_state": state.scheduler.state_dict() if state.scheduler is not None else None,
        "scaler_state": state.scaler.state_dict(), **hooks,
        "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])},
        "data": {"name": data.name, "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test)},
    }


def resume_only(state: TrainState) -> set[str]:
    """What only `--resume` reads, so last.pt alone keeps it: the optimizer (Adam's moments are twice the weights),
    schedule, scaler, RNG and every hook's state (EMA's a second copy of the weights). best.pt is for using the
    model and starting new runs from it (--weights)."""
    return {"optimizer_state", "scheduler_state", "scaler_state", "rng", *(f"{h.name}_state" for h in state.hooks)}


class Checkpoint(Hook):
    def __init__(self, save: Callable[[dict, object], None] = save_checkpoint):
        self.save = save

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        last = payload(state, row)
        # best.pt before last.pt: a kill between the two then leaves last.pt one epoch behind, and the resumed
        # run redoes that epoch and rewrites best.pt identically (the other order loses best.pt).
        if state.improved:
            best = {k: v for k, v in last.items() if k not in resume_only(state)}
            best["model_state"] = state.eval_model.state_dict()
            self.save(best, state.run_dir / "best.pt")
        self.save(last, state.run_dir / "last.pt")


def restore(state: TrainState, ckpt: dict) -> None:
    """Put a last.pt back into a freshly built state (and its hooks): the run continues after ckpt's epoch."""
    state.model.load_state_dict(ckpt["model_state"])
    state.optimizer.load_state_dict(ckpt["optimizer_state"])
    if state.scheduler is not None and ckpt.get("scheduler_state"):
        state.scheduler.load_state_dict(ckpt["scheduler_state"])
    state.scaler.load_state_dict(ckpt["scaler_state"])
    for hook in state.hooks:
        if type(hook).state_dict is Hook.state_dict:  # stateless: asking would copy a stateful hook's tensors
            continue
        saved = ckpt.get(f"{hook.name}_state")
        if saved is None:
            raise ConvclassError(f"--resume {state.run_dir}: last.pt holds no {hook.name} state (the run was "
                                 f"started without it); start a new run with --weights {state.run_dir}/last.pt")
        hook.load_state_dict(saved)
    torch.set_rng_state(ckpt["rng"]["torch"])
    random.setstate((3, tuple(ckpt["rng"]["python"]), None))  # version 3: what getstate() gives on Python 3
    state.history, state.best_val, state.bad_epochs = list(ckpt["history"]), ckpt["best_val"], ckpt["bad_epochs"]
    state.epoch = ckpt["epoch"] + 1
    state.step = state.epoch * state.steps_per_epoch
