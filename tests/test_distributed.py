"""DDP through torchrun on CPU (gloo): replicas agree, metrics cover the whole split, a killed worker recovers."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

# Two processes on a 2-core machine; one thread each keeps them from fighting over cores.
BASE = ["--data", "digits", "--model", "shallow", "--epochs", "3", "--threads", "1", "--batch-size", "64",
        "--lr", "0.01", "--no-report", "--quiet"]


def _cli(*args, timeout=240, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "convclass", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def _losses(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_two_ranks(base: Path, *args) -> Path:
    """`train --nproc 2` on an explicit loopback rendezvous port. The port is free when chosen but released for
    torchrun to bind, so another program may take it first: then, and only then, the launch is retried once
    with a fresh port (a taken port fails at once with "already in use", it does not hang)."""
    for attempt in range(2):
        runs_dir = base / f"attempt{attempt}"
        out = _cli("train", *args, "--nproc", "2", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}",
                   "--runs-dir", runs_dir, "--name", "two")
        if out.returncode == 0 or "already in use" not in out.stderr + out.stdout:
            break
    assert out.returncode == 0, f"exit {out.returncode} (try {attempt + 1})\n{out.stderr[-8000:]}{out.stdout[-2000:]}"
    return runs_dir / "two"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    cache = base / "cache"
    two = _train_two_ranks(base, *BASE, "--data-root", cache)
    one = _cli("train", *BASE, "--runs-dir", base, "--name", "one", "--data-root", cache)
    assert one.returncode == 0, one.stderr + one.stdout
    return two, base / "one"


@pytest.mark.timeout(60)
def test_taken_rendezvous_port_is_a_clear_error(tmp_path):
    with socket.socket() as holder:  # another program listening on the port given
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = _cli("train", *BASE, "--nproc", "2", "--rdzv-endpoint", f"127.0.0.1:{port}", "--runs-dir", tmp_path,
                   "--name", "taken", timeout=50)
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip() == f"error: --rdzv-endpoint 127.0.0.1:{port}: port {port} is already in use; " \
                                 "pick a free port, or leave --rdzv-endpoint out on one machine"
    assert not (tmp_path / "taken").exists()


@pytest.mark.timeout(60)
def test_port_taken_after_the_check_fails_fast(monkeypatch, capfd):
    """A port taken between the check and torchrun's bind: torchrun must not mistake the foreign listener for a
    peer's rendezvous store and wait on it (it did, for minutes), so the caller can retry."""
    from convclass.pipeline import torchrun
    monkeypatch.setattr(torchrun, "_check_port_free", lambda endpoint: None)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        t0 = time.monotonic()
        rc = torchrun.launch_torchrun(["--version"], 2, rdzv_endpoint=f"127.0.0.1:{holder.getsockname()[1]}")
    assert rc != 0 and time.monotonic() - t0 < 45
    assert "already in use" in capfd.readouterr().err


@pytest.mark.timeout(60)
def test_launcher_hands_workers_the_flags_main_was_given(cli, monkeypatch):
    """`train --nproc` passes the flags given to main(argv), less its own, to the workers. It read sys.argv: called
    as a library (here under pytest) it failed, or would have launched someone else's arguments."""
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    res = cli("train", "--data", "digits", "--nproc", "2", "--nnodes=2", "--epochs", "1", "--max-restarts", "1")
    assert res.rc == 0, res
    assert calls[0][calls[0].index("convclass") + 1:] == ["train", "--data", "digits", "--epochs", "1"]


def test_ranks_end_with_identical_weights(runs):
    two, _ = runs
    ranks = json.loads((two / "ranks.json").read_text())
    assert ranks["world"] == 2
    a, b = ranks["param_abs_sums"]
    assert a == b  # every rank computed its own sum: bitwise equality means the replicas never drifted


def test_reported_val_accuracy_is_whole_split(runs):
    """The val accuracy in metrics.csv (reduced over ranks) equals a single-process evaluation of last.pt."""
    two, _ = runs
    from convclass.evaluation import evaluate
    m = evaluate(two / "last.pt", split="val", output=two / "eval-val", device="cpu")
    assert m["n"] > 100
    reported = torch.load(two / "last.pt", weights_only=True)["metrics"]["val_acc"]
    assert reported == pytest.approx(m["accuracy"], abs=1e-9)  # same count of correct images, not rank 0's half


def test_loss_curve_matches_single_process(runs):
    """Same global batch, same data order: only the float summation order of the gradient mean differs.

    `shallow` has no BatchNorm, so no per-rank batch statistics enter; three epochs of Adam amplify rounding
    differences of ~1e-7 to at most ~1e-4 in the loss, hence the 2e-3 tolerance (measured gap: ~1e-4).
    """
    two, one = runs
    l2, l1 = _losses(two), _losses(one)
    assert len(l1) == len(l2) == 3
    for a, b in zip(l1, l2):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=2e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=2e-3)
    assert (two / "config.yaml").read_text().count("world_size: 2") == 1


def _workers(launcher: psutil.Process) -> dict[int, psutil.Process]:
    out = {}
    for p in launcher.children(recursive=True):
        try:
            env = p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "RANK" in env and "LOCAL_RANK" in env and "convclass" in " ".join(p.cmdline()):
            out[int(env["RANK"])] = p
    return out


def test_killed_worker_restarts_from_last_checkpoint(tmp_path):
    # The default one-machine launch (torchrun --standalone): its store binds port 0 and keeps the socket, so
    # no other program can take the port between choosing and binding it.
    epochs = 6
    args = ["train", "--data", "digits", "--model", "cnn3", "--img-size", "32", "--epochs", str(epochs),
            "--threads", "1", "--no-report", "--nproc", "2", "--max-restarts", "2", "--runs-dir", tmp_path,
            "--name", "elastic", "--data-root", tmp_path / "cache"]
    proc = subprocess.Popen([sys.executable, "-m", "convclass", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)  # its own process group: cleanup reaches the workers too
    run = tmp_path / "elastic"
    killed = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if (run / "metrics.csv").exists() and (run / "progress.json").exists():
                done = len(_losses(run))  # epochs checkpointed so far
                prog = json.loads((run / "progress.json").read_text())
                if done >= 1 and prog["epoch"] == done and prog["step"] >= 2:  # mid-way through the next one
                    workers = _workers(psutil.Process(proc.pid))
                    if 1 in workers:
                        workers[1].send_signal(signal.SIGKILL)
                        killed = prog
                        break
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # launcher and any worker left behind by a failure
        except ProcessLookupError:
            pass
    assert killed is not None, "never found a worker to kill mid-training\n" + out[-6000:]
    assert proc.returncode == 0, out[-6000:]
    rows = _losses(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))  # every epoch once, none lost
    restarts = [json.loads(line) for line in (run / "restarts.jsonl").read_text().splitlines()]
    assert restarts and restarts[0]["lost_steps"] >= 1
    assert "restarted from the checkpoint" in out
    best = torch.load(run / "last.pt", weights_only=True)
    assert best["epoch"] == epochs - 1
