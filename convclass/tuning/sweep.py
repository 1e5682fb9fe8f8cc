"""Hyper-parameter sweeps with Optuna, kept in a database so they survive restarts and can be shared.

Every trial is an ordinary `train()` run (runs/tune-<study>/trial-NNNN/); its per-epoch validation accuracy is
reported to Optuna, which prunes trials that fall behind. The study lives in an RDB (SQLite file by default,
PostgreSQL across machines): re-running continues it, several processes can work on it at once, and a trial
whose process died (no heartbeat for `grace` seconds) is marked FAIL and its settings retried once.
"""
from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import TrainConfig
from ..errors import ConvclassError, Interrupted
from .space import Param, apply_params, default_space, suggest

__all__ = ["TuneResult", "tune", "open_study", "write_best_config", "default_storage"]


@dataclass
class TuneResult:
    study_name: str
    storage: str
    best_value: float | None     # best validation accuracy over the whole study (all processes)
    best_params: dict
    best_trial: int | None
    n_trials: int                # trials in the study, all states
    states: dict                 # {"COMPLETE": n, "PRUNED": n, "FAIL": n, ...}
    output: Path                 # folder with best.yaml, history.png, importance.png
    best_config: Path | None
    stale_failed: list[int]      # trials of dead processes this call marked FAIL


def default_storage(runs_dir: str) -> str:
    return f"sqlite:///{Path(runs_dir) / 'tune.db'}"


def _storage(url: str, heartbeat: int, grace: int | None):
    import optuna
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Several processes write to one file: wait for the lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"pool_pre_ping": True}  # survive a server that dropped idle connections
    else:
        raise ConvclassError(f"--storage {url!r}: use sqlite:///path/to/file.db or postgresql://user:pw@host/db")
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=grace or 3 * heartbeat,
            # A trial whose process died is marked FAIL and its parameters queued once more as a new trial.
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    except ImportError:  # optuna's message for a missing database driver
        raise ConvclassError(f"--storage {url.split(':')[0]}: its database driver is not installed; "
                             "pip install 'psycopg[binary]' (PostgreSQL) or 'convclass[postgres]'") from None


def open_study(study: str, storage: str, **kw):
    """Create or load (load_if_exists) the study, after failing the trials of processes that died. Optuna's
    notes that heartbeats are experimental are hidden here only, not in the caller's warning filters."""
    import optuna
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return _open_study(study, storage, **kw)


def _open_study(study: str, storage: str, *, heartbeat: int = 10, grace: int | None = None,
                sampler: str = "tpe", pruner: str = "median", seed: int | None = None):
    import optuna
    from sqlalchemy.exc import DBAPIError

    from .seeding import PerTrialSeedSampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    pruners = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
               "none": optuna.pruners.NopPruner}
    if sampler not in samplers or pruner not in pruners:
        raise ConvclassError(f"--sampler must be tpe or random and --pruner median or none, "
                             f"not {sampler!r} / {pruner!r}")
    if seed is not None and not 0 <= seed < 2**32:
        raise ConvclassError(f"--sampler-seed must be a whole number from 0 to 4294967295, not {seed}")
    # Seeded per trial, not per process: processes sharing the study must not all draw the same sequence.
    chosen = samplers[sampler]() if seed is None else PerTrialSeedSampler(samplers[sampler], seed)
    for attempt in range(6):
        try:
            s = optuna.create_study(study_name=study, storage=_storage(storage, heartbeat, grace),
                                    direction="maximize", load_if_exists=True, sampler=chosen,
                                    pruner=pruners[pruner]())
            break
        except DBAPIError as e:
            # Processes started together on a new database race to create its tables and the study; the
            # loser finds them half-made (table exists, duplicate version row) and simply tries again.
            if attempt == 5:
                raise ConvclassError(f"cannot open --storage {storage}: {str(e).splitlines()[0]}") from None
            time.sleep(0.5 + attempt)
        except ValueError as e:  # an existing study with another direction
            raise ConvclassError(f"study {study!r} in {storage}: {e}; pick another --study") from None
    running = [t.number for t in s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
    optuna.storages.fail_stale_trials(s)
    failed = {t.number for t in s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))}
    return s, sorted(set(running) & failed)


def write_best_config(base: TrainConfig, params: dict, path: Path, note: str) -> Path:
    """best.yaml: the base config with the best trial's values; `convclass train --config best.yaml` runs it."""
    cfg = apply_params(base, params).update(name=None, quiet=False, git_commit=None)
    d = cfg.to_dict()
    d.pop("git_commit")
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"# {note}\n" + yaml.safe_dump(d, sort_keys=False))
    tmp.replace(path)  # atomic: processes finishing together never leave a half-written file
    return path


def _objective(base: TrainConfig, space: list[Param], runs_root: Path, log):
    import optuna
    from ..pipeline import train_and_report

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        cfg = apply_params(base, params).update(runs_dir=str(runs_root), name=f"trial-{trial.number:04d}",
                                                quiet=True)
        if hasattr(cfg, "report"):  # per-trial report figures cost time and nobody reads 20 of them
            cfg = cfg.update(report=False)

        def report(row: dict, run_dir: Path) -> bool:
            trial.set_user_attr("run_dir", str(run_dir))
            trial.report(_score(row), step=row["epoch"])
            if trial.should_prune():
                # Raised through train() (its loop only closes TensorBoard on the way out), so the trial
                # ends PRUNED in the database and no test evaluation is wasted on it.
                raise optuna.TrialPruned(f"val_acc {row['val_acc']:.4f} at epoch {row['epoch']}")
            return False

        t0 = time.perf_counter()
        try:
            res = train_and_report(cfg, callbacks=[report])
        except Interrupted:  # not the trial's own train --resume: the study goes on from its database
            raise Interrupted("the same `convclass tune` command (the study continues from its database)") from None
        best = max(_score(r) for r in res.history if _score(r) == _score(r))  # NaN: not validated
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        trial.set_user_attr("test_acc", res.test_metrics.get("accuracy", res.test_metrics.get("map")))
        return best
    return objective


def _score(row: dict) -> float:
    """What a trial maximises: the validation figure best.pt follows (a multi-label run's macro mAP, else
    accuracy)."""
    return row.get("val_map", row["val_acc"])


def tune(config: TrainConfig | None = None, *, trials: int | None = 20, timeout: float | None = None,
         study: str | None = None, storage: str | None = None, space: list[Param] | None = None,
         sampler: str = "tpe", pruner: str = "median", seed: int | None = None, heartbeat: int = 10,
         grace: int | None = None, output: str | Path | None = None, log=print, **overrides) -> TuneResult:
    """The Python API behind `convclass tune`: run `trials` more trials (this process) of the study."""
    import optuna
    base = (config or TrainConfig()).update(**overrides)
    if trials is None and timeout is None:
        raise ConvclassError("give --trials N or --timeout SECONDS (or both), or the sweep never ends")
    study = study or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(base.data).name}-{base.model}").strip("-")
    storage = storage or default_storage(base.runs_dir)
    space = space if space is not None else default_space(base.model)
    runs_root = Path(base.runs_dir) / f"tune-{study}"
    out = Path(output) if output else runs_root
    s, stale = open_study(study, storage, heartbeat=heartbeat, grace=grace, sampler=sampler, pruner=pruner,
                          seed=seed)
    if stale:
        log(f"marked {len(stale)} trial(s) of a dead process as FAIL (retried once): {stale}")
    done = len(s.get_trials(deepcopy=False))
    log(f"study {study!r} in {storage}: {done} trial(s) so far; searching " +
        "; ".join(p.describe() for p in space))

    def progress(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        value = f"val_acc {t.value:.4f}" if t.value is not None else t.state.name
        try:
            best = f"best {st.best_value:.4f} (#{st.best_trial.number})"
        except ValueError:
            best = "no completed trial yet"
        log(f"trial {t.number} {t.state.name.lower()}: {value}  {best}  {t.params}")

    s.optimize(_objective(base, space, runs_root, log), n_trials=trials, timeout=timeout,
               catch=(ConvclassError,), callbacks=[progress], gc_after_trial=True)
    return summarize(s, storage, base, out, log=log, stale=stale)


def summarize(s, storage: str, base: TrainConfig, out: Path, log=print, stale=()) -> TuneResult:
    """Write best.yaml and the plots for the study as it stands (trials of every process)."""
    import optuna
    from .plots import plot_history, plot_importance
    all_trials = s.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in all_trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    complete = [t for t in all_trials if t.state == optuna.trial.TrialState.COMPLETE]
    best_cfg = None
    if complete:
        best = max(complete, key=lambda t: t.value)
        best_cfg = write_best_config(base, best.params, out / "best.yaml",
                                     f"study {s.study_name}, trial {best.number}: val_acc {best.value:.4f}")
        log(f"best: trial {best.number} val_acc {best.value:.4f} {best.params} -> {best_cfg}")
    plot_history(all_trials, out / "history.png", title=f"study {s.study_name}")
    imp = plot_importance(s, out / "importance.png")
    if imp is None:
        log("parameter importance needs 2+ completed trials that differ; skipped importance.png")
    return TuneResult(study_name=s.study_name, storage=storage,
                      best_value=best.value if complete else None, best_params=best.params if complete else {},
                      best_trial=best.number if complete else None, n_trials=len(all_trials), states=states,
                      output=out, best_config=best_cfg, stale_failed=list(stale))
