"""`train()`: the named steps of a training run, from the config to best.pt. The loop is loop.py's `fit`; what
happens around each step is a hook (hooks/). Scoring best.pt on the test split and the report come next, in
the pipeline (convclass.train)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import save_checkpoint
from ..config import TrainConfig, git_commit, save_config
from ..data import PreparedData
from ..errors import Interrupted
from .core import Hook, TrainState
from .distributed import check_replicas, share_run_dir, shutdown
from .epoch import train_one_epoch
from .hooks import (Callbacks, Checkpoint, DivergenceGuard, EarlyStopping, Heartbeat, MetricsCSV, Progress,
                    TensorBoard, diverged, feature_hooks, restore)
from .loop import fit, validate
from .runs import discard_unsaved, disk_full, new_run_dir, saved_test_metrics
from .setup import Log, build_model, build_state, load_data, resolve_config, resume_config, start_process
from .step import Diverged

__all__ = ["train", "TrainResult", "train_one_epoch", "validate"]


@dataclass
class TrainResult:
    run_dir: Path
    # None: best.pt is still to be scored on the test split (the pipeline does it, with `state`); a complete
    # run resumed gives its saved test_metrics.json; DDP ranks other than 0 give {} (rank 0 scores)
    test_metrics: dict | None
    history: list[dict]
    config: TrainConfig
    state: TrainState | None = field(default=None, repr=False)  # what the test step needs, on the scoring rank


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: list | None = None, hooks: list[Hook] | None = None, prepared: PreparedData | None = None,
          **overrides) -> TrainResult:
    """Train a model up to its best.pt (convclass.train then scores it and writes the report). Overrides are
    TrainConfig fields.

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
    shutdown()
    return TrainResult(run_dir=state.run_dir, test_metrics=None if ctx.is_main else {}, history=state.history,
                       config=state.cfg, state=state if ctx.is_main else None)


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
        if full := disk_full(e, state.run_dir):
            raise full from None
        if (isinstance(e, KeyboardInterrupt) and not isinstance(e, Interrupted) and state.ctx.is_main
                and (state.run_dir / "last.pt").is_file()):
            raise Interrupted(f"convclass train --resume {state.run_dir}") from None
        raise
