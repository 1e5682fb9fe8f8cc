"""Per-image augmentation in DataLoader workers vs in the training process.

Trains a model for one epoch on a CIFAR-10 subset with a per-image augmentation (RandAugment by default),
once per worker count, each in a fresh process, in alternating rounds; prints training img/s (median over
rounds) and the ratio to in-process augmentation (workers 0). Decides `auto_workers` (convclass/data/loader.py).

    .venv/bin/python bench/loader_workers.py --data ~/data/cifar10 --workers 0 1 2 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from convclass import train
a = json.loads(sys.argv[1])
r = train(data=a["data"], data_root=a["root"], runs_dir=a["runs"], model=a["model"], augment=a["augment"],
          workers=a["workers"], subset=a["subset"], epochs=1, batch_size=a["batch"], val_split=0.02, device="cpu",
          quiet=True, report=False)
row = r.history[0]
print("RESULT", json.dumps({"img_s": a["subset"] / row["seconds"], "seconds": row["seconds"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="~/data/cifar10")
    ap.add_argument("--data-root", default="~/.cache/convclass")
    ap.add_argument("--model", default="cnn3")
    ap.add_argument("--augment", default="randaugment")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--subset", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    info = print_machine()
    res: dict[int, list[float]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as runs:
        for r in range(args.rounds):
            for w in args.workers:
                a = dict(data=str(Path(args.data).expanduser()), root=str(Path(args.data_root).expanduser()),
                         runs=runs, model=args.model, augment=args.augment, workers=w, subset=args.subset,
                         batch=args.batch)
                out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(a)], capture_output=True, text=True,
                                     cwd=REPO, timeout=3600)
                line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
                if line is None:
                    raise SystemExit(f"child failed:\n{out.stdout}\n{out.stderr}")
                img_s = json.loads(line[7:])["img_s"]
                res[w].append(img_s)
                print(f"round {r + 1}: workers {w}: {img_s:.0f} img/s", flush=True)
    base = statistics.median(res[args.workers[0]])
    print(f"\n{args.model}, --augment {args.augment}, batch {args.batch}, {args.subset} images, "
          f"medians of {args.rounds}:")
    for w in args.workers:
        m = statistics.median(res[w])
        print(f"  workers {w}: {m:7.0f} img/s  {m / base:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "args": vars(args),
                                               "img_s": {str(k): v for k, v in res.items()}}, indent=1))


if __name__ == "__main__":
    main()
