"""Same seed, same numbers: train a few configurations with two source trees and diff their metrics.csv.

Written for the move of the training loop onto a core with hooks (issue 14): every column but `seconds` must
match, epoch by epoch, between the tree before the change and the tree after it.

    .venv/bin/python bench/refactor_parity.py --base /tmp/base --new .
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "fast": ["--data", "digits", "--recipe", "fast", "--epochs", "3", "--threads", "1", "--seed", "1"],
    "lookahead-microbatch-sgd": ["--data", "digits", "--model", "cnn3", "--epochs", "3", "--threads", "1",
                                 "--lookahead", "--micro-batch", "32", "--optimizer", "sgd"],
    "mixup-balance-flipcrop": ["--data", "digits", "--model", "cnn3", "--epochs", "3", "--mixup", "0.2",
                               "--balance", "loss", "--augment", "flip-crop", "--threads", "1"],
    # The fast recipe on real photos: a CIFAR-10 subset (docs: ../shared/DATA.md), 3 epochs on both cores.
    "fast-cifar10-subset": ["--data", str(Path("~/data/cifar10").expanduser()), "--recipe", "fast", "--subset",
                            "10000", "--epochs", "3", "--threads", "2", "--seed", "0"],
}


def run(tree: Path, args: list[str], runs: Path, name: str) -> list[dict]:
    """metrics.csv without its seconds column, plus a last row with the test metrics."""
    threads = args[args.index("--threads") + 1]
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": threads}
    cmd = [sys.executable, "-m", "convclass", "train", *args, "--runs-dir", str(runs), "--name", name,
           "--no-report", "--quiet", "--device", "cpu"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True)
    print(f"  {tree}: {time.perf_counter() - t0:.1f} s wall", flush=True)
    with open(runs / name / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    secs = sorted(float(r["seconds"]) for r in rows)
    print(f"  {tree}: epoch seconds {', '.join(r['seconds'] for r in rows)} (median {secs[len(secs) // 2]:.1f})",
          flush=True)
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    test = json.loads((runs / name / "test_metrics.json").read_text())
    return rows + [{"test": {k: test[k] for k in ("accuracy", "f1_macro", "checkpoint_epoch")}}]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="/tmp/base", help="source tree before the change")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parents[1]), help="source tree after it")
    ap.add_argument("--case", action="append", choices=list(CASES), help="default: all")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import print_machine
    print_machine()
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.case or [c for c in CASES if "cifar" not in c or Path(CASES[c][1]).is_dir()]:
            old = run(Path(args.base).resolve(), CASES[case], Path(tmp) / "base", case)
            new = run(Path(args.new).resolve(), CASES[case], Path(tmp) / "new", case)
            same = old == new
            differ += not same
            print(f"{case}: {'identical' if same else 'DIFFERENT'} ({len(old) - 1} epochs, every column but "
                  "seconds, and the test metrics)")
            for a, b in zip(old, new):
                print("  base", a)
                if a != b:
                    print("  new ", b)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
