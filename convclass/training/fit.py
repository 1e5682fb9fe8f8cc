"""`train()`: the named steps of a training run, from the config to the test metrics. The loop is loop.py's
`fit`; what happens around each step is a hook (hooks/)."""
from __future__ import annotations

import errno
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import DiskFull, disk_error, load_checkpoint, save_checkpoint
from ..config import TrainConfig, git_commit, save_config
from ..data import PreparedData
from ..data.summary import data_summary
from ..errors import ConvclassError
from ..metrics import classification_metrics
from ..models import create_model
from ..reporting import build_report, save_predictions
from .core import Hook, TrainState
from .distributed import check_replicas, share_run_dir, shutdown
from .epoch import train_one_epoch
from .hooks import (Callbacks, Checkpoint, DivergenceGuard, EarlyStopping, Heartbeat, MetricsCSV, Progress,
                    TensorBoard, diverged, feature_hooks, restore)
from .loop import fit, validate
from .runs import discard_unsaved, new_run_dir, saved_test_metrics
from .setup import Log, build_model, build_state, load_data, resolve_config, resume_config, start_process
from .step import Diverged

__all__ = ["train", "TrainResult", "train_one_epoch", "validate"]


@dataclass
class TrainResult:
    run_dir: Path
    test_metrics: dict
    history: list[dict]
    config: TrainConfig


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: list | None = None, hooks: list[Hook] | None = None, prepared: PreparedData | None = None,
          **overrides) -> TrainResult:
    """Train a model; the Python API behind `convclass train`. Overrides are TrainConfig fields.

    `callbacks`: functions called as cb(epoch_row: dict, run_dir: Path) after each epoch's checkpoint is
    written; one returning True stops training (tuning uses this to prune trials).
    `hooks`: more Hook objects (core.py), run after the built-in ones.
    `prepared`: data already split and decoded (cross-validation folds); config.data is then only recorded.
    """
    run_dir = Path(resume) if resume is not None else None
    if run_dir is not None:
        cfg, ckpt, done = resume_config(run_dir, overrides)
        if done and (test := saved_test_metrics(run_dir)) is not None:
            Log(cfg.quiet)(done)
            return TrainResult(run_dir=run_dir, test_metrics=test, history=list(ckpt["history"]), config=cfg)
    else:
        cfg, ckpt, done = resolve_config(config, overrides), None, None
    ctx, device, log = start_process(cfg)
    data = load_data(cfg, log, prepared)
    model, arch_args = build_model(cfg, data, device, log, fresh=ckpt is None, ctx=ctx)
    state = build_state(cfg, data, model, arch_args, device, log, ctx)
    state.run_dir = run_dir or _new_run_dir(state)
    state.hooks = _hooks(state, callbacks or [], hooks or [])
    if ckpt is not None:
        restore(state, ckpt)
        log(f"{done}; scoring its test split" if done
            else f"resuming {run_dir} at epoch {state.epoch + 1}/{cfg.epochs}")
    if ctx.enabled:
        log(f"DDP: {ctx.world} processes, global batch {cfg.batch_size} ({cfg.batch_size // ctx.world} per "
            "process); the learning rate is not rescaled because the global batch does not change")
    log(f"run folder: {state.run_dir}")
    _fit(state, fresh=resume is None)
    check_replicas(state.model, ctx, device, state.run_dir, log)
    test = _final_test_or_disk_full(state) if ctx.is_main else {}
    shutdown()
    return TrainResult(run_dir=state.run_dir, test_metrics=test, history=state.history, config=state.cfg)


def _new_run_dir(state: TrainState) -> Path:
    """runs/<name>, made by rank 0 with the resolved config.yaml inside; every rank learns its path."""
    run_dir = None
    if state.ctx.is_main:
        run_dir = new_run_dir(state.cfg.runs_dir, state.cfg.name or f"{state.data.name}-{state.cfg.model}")
        state.cfg = state.cfg.update(git_commit=git_commit(), world_size=state.ctx.world)
        save_config(state.cfg, run_dir / "config.yaml")
    return share_run_dir(run_dir, state.ctx)


def _hooks(state: TrainState, callbacks: list, extra: list[Hook]) -> list[Hook]:
    """In the order they run: the features the config switches on (they change the weights), the guard (before
    anything is saved), the run folder's files and the console (rank 0 only), then what may stop the run."""
    hooks = feature_hooks(state) + [DivergenceGuard()]
    if state.ctx.is_main:
        hooks += [Checkpoint(save_checkpoint), MetricsCSV(), TensorBoard(), Progress(), Heartbeat()]
    hooks += [Callbacks(callbacks)] + ([EarlyStopping(state.cfg.patience)] if state.cfg.patience is not None else [])
    return hooks + extra


def _fit(state: TrainState, fresh: bool) -> None:
    """fit(), with each way a run fails made one line; a new run that failed before its first checkpoint
    leaves no run folder behind."""
    try:
        fit(state, state.hooks)
    except BaseException as e:
        if fresh and state.ctx.is_main:
            discard_unsaved(state.run_dir)
        if isinstance(e, Diverged):
            raise diverged(str(e), state) from None
        if full := _disk_full(e, state.run_dir):
            raise full from None
        raise


def _disk_full(e: BaseException, run_dir: Path) -> ConvclassError | None:
    """A full disk (checkpoint, metrics.csv, TensorBoard, ...) as one line: where, how much is free, and how to
    go on once there is space (--resume continues from last.pt and scores a finished run)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        e = DiskFull(disk_error(e.filename or run_dir, e))
    if not isinstance(e, DiskFull):
        return None
    then = (f"continue with `convclass train --resume {run_dir}`" if (run_dir / "last.pt").exists()
            else "run the command again")
    return ConvclassError(f"{e}, then {then}")


def _final_test_or_disk_full(state: TrainState) -> dict:
    try:
        return _final_test(state.run_dir, state.data, state.device, state.eval_batch_size, state.log,
                           state.cfg.report, state.cfg.tta)
    except (OSError, DiskFull) as e:
        if full := _disk_full(e, state.run_dir):
            raise full from None
        raise


def _final_test(run_dir: Path, data: PreparedData, device, batch_size: int, log, report: bool = True,
                tta: str = "none") -> dict:
    """Evaluate best.pt on the test split; write test_metrics.json and store the figures in best.pt."""
    best = load_checkpoint(run_dir / "best.pt")
    model = create_model(best["arch"], **best["arch_args"]).to(device)
    model.load_state_dict(best["model_state"])
    _, probs = validate(model, data.test, data, device, batch_size, tta=tta)
    m = classification_metrics(data.test.y.numpy(), probs.numpy(), data.classes)
    m["checkpoint_epoch"] = best["epoch"] + 1
    m["tta"] = tta
    (run_dir / "test_metrics.json").write_text(json.dumps(m, indent=1))
    best["metrics"] = {**best["metrics"], "test_acc": m["accuracy"], "test_f1_macro": m["f1_macro"],
                       "test_n": m["n"]}
    save_checkpoint({k: v for k, v in best.items() if k != "format"}, run_dir / "best.pt")
    top5 = f"  top-5 {m['top5_accuracy']:.2%}" if "top5_accuracy" in m else ""
    log(f"test accuracy {m['accuracy']:.2%}{top5}  macro F1 {m['f1_macro']:.4f}  ({m['n']} images, "
        f"best epoch {m['checkpoint_epoch']})")
    (run_dir / "data_summary.json").write_text(json.dumps(data_summary(data), indent=1))
    save_predictions(run_dir, data.test.y.numpy(), probs.numpy(), data.classes, data.test.paths)
    if report:
        try:
            log(f"report: {build_report(run_dir, images=data.test.x)}")
        except Exception as e:  # the run and its checkpoints are already saved; a figure must not lose them
            warnings.warn(f"could not write the report ({type(e).__name__}: {e}); rebuild it with "
                          f"`convclass report {run_dir}`")
    return m
