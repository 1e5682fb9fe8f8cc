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
from pathlib import Path

CASES = {
    "fast": ["--data", "digits", "--recipe", "fast", "--epochs", "3", "--threads", "1", "--seed", "1"],
    "lookahead-microbatch-sgd": ["--data", "digits", "--model", "cnn3", "--epochs", "3", "--threads", "1",
                                 "--lookahead", "--micro-batch", "32", "--optimizer", "sgd"],
    "mixup-balance-flipcrop": ["--data", "digits", "--model", "cnn3", "--epochs", "3", "--mixup", "0.2",
                               "--balance", "loss", "--augment", "flip-crop", "--threads", "1"],
}


def run(tree: Path, args: list[str], runs: Path, name: str) -> list[dict]:
    """metrics.csv without its seconds column, plus a last row with the test metrics."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "convclass", "train", *args, "--runs-dir", str(runs), "--name", name,
           "--no-report", "--quiet", "--device", "cpu"]
    subprocess.run(cmd, cwd=tree, env=env, check=True)
    with open(runs / name / "metrics.csv") as f:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    test = json.loads((runs / name / "test_metrics.json").read_text())
    return rows + [{"test": {k: test[k] for k in ("accuracy", "f1_macro", "checkpoint_epoch")}}]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="/tmp/base", help="source tree before the change")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parents[1]), help="source tree after it")
    ap.add_argument("--case", action="append", choices=list(CASES), help="default: all")
    args = ap.parse_args()
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.case or list(CASES):
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
