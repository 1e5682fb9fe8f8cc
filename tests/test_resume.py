"""Kill -9 a real `convclass train` process, resume it, and get exactly the run that was never interrupted."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from conftest import REPO
from convclass.checkpoint import load_checkpoint
from convclass import train

EPOCHS = 10
# One thread on both sides: CPU kernels then reduce in the same order, so weights match bit for bit.
RUN = dict(data="digits", model="cnn3", epochs=EPOCHS, batch_size=64, seed=5, threads=1, device="cpu",
           report=False, quiet=True)


def _flags(runs_dir: Path, data_root: Path, name: str) -> list[str]:
    out = []
    for k, v in {**RUN, "runs_dir": runs_dir, "data_root": data_root, "name": name}.items():
        flag = "--" + k.replace("_", "-")
        out += [flag] if v is True else [f"--no-{k.replace('_', '-')}"] if v is False else [flag, str(v)]
    return out


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "convclass", "train", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
    """SIGKILL `proc` as soon as ready() is true; fail if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"train exited (rc {proc.returncode}) before {what}\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, cli):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    ref = train(**RUN, runs_dir=str(runs), data_root=str(cache), name="ref").run_dir
    run = runs / "cut"

    # 1. Killed after the run folder exists but before the first checkpoint.
    proc = _start(_flags(runs, cache, "cut"))
    _kill_when(proc, lambda: (run / "config.yaml").exists(), "config.yaml")
    assert not (run / "last.pt").exists(), "the kill came too late to test a resume with no checkpoint"

    # 2. Resumed (from scratch, as there is no checkpoint), then killed again mid-training.
    proc = _start(["--resume", str(run)])
    _kill_when(proc, lambda: (run / "last.pt").exists(), "the first last.pt")
    done = load_checkpoint(run / "last.pt")["epoch"] + 1
    assert 1 <= done < EPOCHS and not (run / "test_metrics.json").exists(), "the kill came after the end"

    # 3. Resumed to the end.
    res = cli("train", "--resume", run)
    assert res.rc == 0, res
    assert f"at epoch {done + 1}/{EPOCHS}" in res.out  # it continued, not restarted

    assert _metrics(run) == _metrics(ref)
    assert len(_metrics(run)) == EPOCHS
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(run / name), load_checkpoint(ref / name)
        assert a["epoch"] == b["epoch"]
        assert _same_state(a["model_state"], b["model_state"]), f"{name} weights differ from the uninterrupted run"
    got = json.loads((run / "test_metrics.json").read_text())
    want = json.loads((ref / "test_metrics.json").read_text())
    assert got["accuracy"] == want["accuracy"] and got["confusion_matrix"] == want["confusion_matrix"]
