"""The decode cache: time to decode the CIFAR-10 JPEGs cold into it, then time from a fresh process's start to
its first training step on the warm cache (interpreter start, imports, cache load, model set-up included).

    .venv/bin/python bench/data_cache.py --data ~/data/cifar10
    .venv/bin/python bench/data_cache.py --data ~/data/cifar10 --warm-runs 5 --baseline f5dc589

--baseline REV alternates each warm start with one of the code at git revision REV (a temporary worktree; the
cache format must be the same), on the same warm cache, and prints both arms' medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: stops at the entry of the first training epoch and prints the seconds since the
# parent launched it, and the process's peak resident memory.
CHILD = r"""
import sys, time, resource
t0 = float(sys.argv[1])
import torch
t_torch = time.time() - t0
import convclass.training.loop as loop
def first_step(*a, **k):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"FIRST_STEP {time.time() - t0:.3f} {rss:.0f} {t_torch:.3f}", flush=True)
    raise SystemExit(0)
loop.train_one_epoch = first_step
from convclass import train
train(data=sys.argv[2], data_root=sys.argv[3], recipe=sys.argv[4], runs_dir=sys.argv[5], device="cpu",
      quiet=True, report=False)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="~/data/cifar10")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--warm-runs", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="alternate each warm start with the code at this git revision")
    args = ap.parse_args()
    info = print_machine()
    data = str(Path(args.data).expanduser())
    from convclass.config import TrainConfig
    from convclass.data import prepare_data
    from convclass.training.recipes import with_recipe
    cfg = with_recipe(TrainConfig(), {"recipe": args.recipe})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cache"
        t0 = time.perf_counter()
        d = prepare_data(data, data_root=str(root), val_split=cfg.val_split, seed=cfg.seed)
        cold = time.perf_counter() - t0
        n = len(d.train) + len(d.val) + len(d.test)
        print(f"cold: scanned and decoded {n} images into the cache in {cold:.1f}s ({n / cold:.0f} img/s, "
              f"{os.cpu_count()} cores)", flush=True)
        del d
        arms = {"current": REPO}
        base_tree = None
        if args.baseline:
            base_tree = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base_tree),
                            args.baseline], check=True)
            arms = {f"baseline {args.baseline}": base_tree, "current": REPO}
        warm: dict[str, list[dict]] = {a: [] for a in arms}
        try:
            for _ in range(args.warm_runs):
                for arm, tree in arms.items():  # alternating: the VM's speed drifts within minutes
                    start = time.time()
                    out = subprocess.run([sys.executable, "-c", CHILD, str(start), data, str(root), args.recipe,
                                          str(Path(tmp) / "runs")], capture_output=True, text=True, cwd=tree,
                                         timeout=600, env={**os.environ, "PYTHONPATH": str(tree)})
                    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("FIRST_STEP")), None)
                    if line is None:
                        raise SystemExit(f"child failed:\n{out.stdout}\n{out.stderr}")
                    secs, rss, t_torch = (float(v) for v in line.split()[1:4])
                    warm[arm].append({"seconds": secs, "peak_rss_mb": rss, "import_torch_s": t_torch})
                    print(f"warm ({arm}): process start -> first training step {secs:.2f}s, of which interpreter "
                          f"start + `import torch` {t_torch:.2f}s (peak RSS so far {rss:.0f} MB)", flush=True)
        finally:
            if base_tree is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)])
    print(f"cold decode {cold:.1f}s")
    for arm, runs in warm.items():
        med = statistics.median(w["seconds"] for w in runs)
        rest = statistics.median(w["seconds"] - w["import_torch_s"] for w in runs)
        print(f"{arm}: warm start -> first step median {med:.2f}s of {len(runs)} ({rest:.2f}s after `import torch`)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "cold_decode_s": cold, "images": n,
                                               "warm": warm}, indent=1))


if __name__ == "__main__":
    main()
