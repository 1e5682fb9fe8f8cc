"""Optuna sweeps: search-space parsing, two processes sharing one SQLite study, and a killed trial."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc

from convclass.config import TrainConfig, load_config
from convclass.errors import ConvclassError
from convclass.tuning.space import _param, apply_params, parse_param_flag
from convclass.tuning.sweep import open_study

# Tiny trials: digits (8x8), the one-layer CNN, one epoch, a narrow space (a YAML file plus a flag).
SPACE = "lr: {low: 1e-3, high: 1e-2, log: true}\nbatch_size: [32, 64]\n"


def _tune_cmd(tmp_path, study, *extra):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return [sys.executable, "-m", "convclass", "tune", "--data", "digits", "--model", "shallow", "--epochs", "1",
            "--threads", "1", "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path / "cache"),
            "--storage", f"sqlite:///{tmp_path / 'tune.db'}", "--study", study, "--space", str(space),
            "--param", "model_args.filters=4,8", *extra]


def _env():
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}


def _trials(tmp_path, study):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'tune.db'}").get_trials()


def test_param_flags_parse():
    p = parse_param_flag("lr=1e-4:1e-1:log")
    assert (p.low, p.high, p.log, p.integer) == (1e-4, 1e-1, True, False)
    assert parse_param_flag("epochs=2:6").integer
    assert parse_param_flag("batch_size=32,64").choices == [32, 64]
    assert parse_param_flag("augment=none,flip-crop").choices == ["none", "flip-crop"]  # a preset, not None
    assert parse_param_flag("grad_clip=none,1").choices == [None, 1]
    assert parse_param_flag("model-args.width=0.5,1").name == "model_args.width"
    assert _param("lr", {"low": "1e-4", "high": 0.1, "log": True}).low == 1e-4  # YAML reads 1e-4 as a string
    with pytest.raises(ConvclassError, match="not a training option"):
        parse_param_flag("learning_rate=1:2")
    with pytest.raises(ConvclassError, match="low > 0"):
        parse_param_flag("weight_decay=0:1e-2:log")


def test_apply_params_merges_model_knobs():
    cfg = apply_params(TrainConfig(model_args={"dropout": 0.1}), {"lr": 0.01, "model_args.width": 2.0})
    assert cfg.lr == 0.01 and cfg.model_args == {"dropout": 0.1, "width": 2.0}


@pytest.mark.timeout(480)
def test_two_seeded_processes_share_one_study(tmp_path):
    # Seeded: two `--sampler-seed 1` processes on one study once drew identical settings (trials 0 = 1, 2 = 3).
    procs = [subprocess.Popen(_tune_cmd(tmp_path, "shared", "--trials", "2", "--sampler-seed", "1"), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = _trials(tmp_path, "shared")
    numbers = [t.number for t in trials]
    assert len(trials) == 4 and sorted(numbers) == list(range(4))  # none lost, none duplicated
    assert all(t.state.name == "COMPLETE" for t in trials), [t.state for t in trials]
    drawn = {t.number: t.params for t in trials}
    assert len({tuple(sorted(p.items())) for p in drawn.values()}) == 4, drawn  # no trial repeats another
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(run_dirs) == 4  # every trial trained in its own run folder
    best = load_config(tmp_path / "runs" / "tune-shared" / "best.yaml")  # loadable by train --config
    top = max(trials, key=lambda t: t.value)
    assert best.lr == pytest.approx(top.params["lr"]) and best.batch_size == top.params["batch_size"]
    assert set(top.params) == {"lr", "batch_size", "model_args.filters"}
    assert best.model_args == {"filters": top.params["model_args.filters"]}
    assert (tmp_path / "runs" / "tune-shared" / "history.png").exists()
    # A new study in one process: trial N draws the same settings however the study is split over processes.
    out = subprocess.run(_tune_cmd(tmp_path, "repeat", "--trials", "4", "--sampler-seed", "1"), env=_env(),
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {t.number: t.params for t in _trials(tmp_path, "repeat")} == drawn


def test_seeded_random_sampler_in_two_study_handles(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    with pytest.raises(ConvclassError, match="--sampler-seed must be a whole number from 0"):
        open_study("r", url, sampler="random", seed=-1)
    studies = [open_study("r", url, sampler="random", seed=3)[0] for _ in range(2)]  # as two processes would
    for _ in range(2):
        for s in studies:
            s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    xs = [t.params["x"] for t in studies[0].get_trials()]
    assert len(set(xs)) == 4, xs


def test_killed_trial_is_marked_failed_and_study_continues(tmp_path):
    # A long trial (200 epochs) with 1 s heartbeats; kill the process once the trial is running.
    p = subprocess.Popen(_tune_cmd(tmp_path, "killed", "--trials", "1", "--heartbeat", "1", "--epochs", "200"),
                         env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            if (tmp_path / "tune.db").exists():
                try:
                    running = [t for t in _trials(tmp_path, "killed") if t.state.name == "RUNNING"]
                except (KeyError, sqlalchemy.exc.SQLAlchemyError):
                    # not created yet, or caught mid-creation: two connections racing to write optuna's schema
                    running = []
                if running and running[0].intermediate_values:  # mid-trial: at least one epoch reported
                    break
            assert p.poll() is None, "tune exited before its trial was running"
            time.sleep(0.5)
        else:
            pytest.fail("no running trial within 180 s")
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert [t.state.name for t in _trials(tmp_path, "killed")] == ["RUNNING"]  # what a dead process leaves
    time.sleep(4)  # past the grace period (3 heartbeats)
    out = subprocess.run(_tune_cmd(tmp_path, "killed", "--trials", "1", "--heartbeat", "1"), env=_env(),
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "marked 1 trial(s) of a dead process as FAIL" in out.stdout
    trials = _trials(tmp_path, "killed")
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params  # the killed trial's settings were retried, not lost
