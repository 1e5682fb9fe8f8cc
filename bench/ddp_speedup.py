"""DDP on one machine: 2 processes x 1 thread against 1 process x 2 threads, same job, same global batch.

Times only the training epochs (the `seconds` column of metrics.csv), not start-up; arms alternate.

    .venv/bin/python bench/ddp_speedup.py --data digits --model cnn3 --img-size 32 --epochs 3 --rounds 2
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402


def run_arm(tmp: Path, name: str, common: list[str], extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "convclass", "train", *common, "--runs-dir", str(tmp), "--name", name,
           "--no-report", "--quiet", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    run = sorted(tmp.glob(f"{name}*"))[-1]
    with open(run / "metrics.csv") as f:
        return sum(float(r["seconds"]) for r in csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--model", default="cnn3")
    ap.add_argument("--img-size", default="32")
    ap.add_argument("--epochs", default="3")
    ap.add_argument("--batch-size", default="64")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print_machine()
    common = ["--data", args.data, "--model", args.model, "--img-size", args.img_size, "--epochs", args.epochs,
              "--batch-size", args.batch_size]
    single, ddp = [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(args.rounds):
            single.append(run_arm(tmp, "single", common, ["--threads", "2"]))
            ddp.append(run_arm(tmp, "ddp", common, ["--threads", "1", "--nproc", "2"]))
            print(f"round {r + 1}: 1 process x 2 threads {single[-1]:.1f}s, 2 processes x 1 thread {ddp[-1]:.1f}s")
    s, d_ = statistics.median(single), statistics.median(ddp)
    print(f"training time (median of {args.rounds}): 1x2 threads {s:.1f}s, 2x1 thread (DDP, gloo) {d_:.1f}s, "
          f"speed-up of DDP {s / d_:.2f}x")


if __name__ == "__main__":
    main()
