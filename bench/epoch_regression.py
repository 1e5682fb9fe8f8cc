"""Seconds per training epoch of two source trees, run alternately on the same data (a speed regression check).

The machine is shared and drifts: the arms alternate (base, new, base, new ...) so both see the same load, and
the medians and their ratio are what to quote. Per-epoch seconds come from each run's metrics.csv (training plus
validation, as the run logs them), so decoding (cold or cached) is not in them; the first epoch of a run pays
one-off costs (kernel selection, first touch of the mapped cache) and is left out. On a machine others load,
`--clock cpu --threads 1` makes the figure the process's CPU seconds per epoch (the run's timer is swapped for
time.process_time), which other processes barely move; wall seconds are what a user waits.

    git worktree add /tmp/old c79f2af
    .venv/bin/python bench/epoch_regression.py --base /tmp/old --new . --rounds 3
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train_args(a, epochs: int) -> list[str]:
    return ["--data", a.data, "--recipe", a.recipe, "--subset", str(a.subset), "--epochs", str(epochs),
            "--threads", str(a.threads), "--seed", "0", "--tta", "none", "--no-report", "--quiet", "--device", "cpu"]


# The CLI with the epoch timer (time.perf_counter in the training loop) reading the process's CPU time instead.
CPU_CLOCK = ("import runpy, time; time.perf_counter = time.process_time; "
             "runpy.run_module('convclass', run_name='__main__', alter_sys=True)")


def epoch_seconds(tree: Path, args: list[str], runs: Path, name: str, threads: int, clock: str) -> list[float]:
    """The run's per-epoch seconds, from its metrics.csv."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    launch = ["-m", "convclass"] if clock == "wall" else ["-c", CPU_CLOCK]
    cmd = [sys.executable, *launch, "train", *args, "--runs-dir", str(runs), "--name", name]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(runs / name / "metrics.csv") as f:
        return [float(r["seconds"]) for r in csv.DictReader(f)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="source tree before (e.g. a git worktree of the old commit)")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parents[1]), help="source tree after")
    ap.add_argument("--data", default=str(Path("~/data/cifar10").expanduser()))
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--subset", type=int, default=12000, help="training images per epoch")
    ap.add_argument("--epochs", type=int, default=2, help="per run; the first is left out of the figures")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each arm, alternating")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: CPU seconds (see above)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import print_machine
    print_machine()
    trees = {"base": Path(a.base).resolve(), "new": Path(a.new).resolve()}
    args = train_args(a, a.epochs)
    secs: dict[str, list[float]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for arm, tree in trees.items():
                t0 = time.perf_counter()
                s = epoch_seconds(tree, args, Path(tmp) / arm, f"r{r}", a.threads, a.clock)
                secs[arm] += s[1:] if len(s) > 1 else s
                print(f"round {r + 1} {arm:4s}: epochs {', '.join(f'{x:.1f}' for x in s)} s "
                      f"({time.perf_counter() - t0:.0f} s wall, load {os.getloadavg()[0]:.2f})", flush=True)
    med = {arm: statistics.median(v) for arm, v in secs.items()}
    for arm, tree in trees.items():
        print(f"{arm:4s} {tree}: median {med[arm]:.2f} {a.clock} s per epoch of {a.subset} images over {len(secs[arm])} epochs")
    print(f"new / base = {med['new'] / med['base']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
