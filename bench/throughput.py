"""Training throughput: convclass's loop against a plain torchvision loop, same model, batch and optimizer.

The plain loop is written the usual way: ImageFolder + DataLoader(num_workers=2) + RandomCrop/flip transforms.
The convclass arm is `convclass.train` itself (one epoch over batch x steps images, its own CPU settings:
decoded-tensor batches, batch augmentation, channels_last, the allocator setting, the short OpenMP spin that
`import convclass` sets before torch loads). Each measurement runs in a fresh process, so neither arm inherits the
other's process state (the plain child imports torch before convclass, so it runs with torch's defaults); arms
alternate (A B A B ...) so machine noise hits both; medians and their ratio are printed.

    .venv/bin/python bench/throughput.py --data ~/data/cifar10 --models cnn3 resnet18 --steps 30 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402


def plain_loop(model, root: Path, batch: int, steps: int, workers: int) -> float:
    import torch
    import torch.nn.functional as F
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
    loader = torch.utils.data.DataLoader(ImageFolder(str(root / "train"), tf), batch_size=batch, shuffle=True,
                                         num_workers=workers, drop_last=True, persistent_workers=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    it = iter(loader)
    x, y = next(it)  # worker start-up is not counted: the steady state is what a long run sees
    t0, seen = time.perf_counter(), 0
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        x, y = next(it)
    return seen / (time.perf_counter() - t0)


def convclass_loop(name: str, root: Path, batch: int, steps: int) -> float:
    """One epoch of `convclass.train` over batch*steps training images; img/s of the epoch's training part."""
    import torch

    from convclass import train
    from convclass.data import prepare_data
    from convclass.data.prepare import TensorSplit
    data = prepare_data(str(root), img_size=32, data_root="~/.cache/convclass", verbose=False)
    n = batch * steps
    idx = torch.randperm(len(data.train))[:n]
    data.train = TensorSplit(data.train.x[idx], data.train.y[idx])
    data.val = TensorSplit(data.val.x[:2], data.val.y[:2])  # the epoch's validation is not what is measured
    import tempfile
    with tempfile.TemporaryDirectory() as runs:
        res = train(prepared=data, model=name, batch_size=batch, epochs=1, optimizer="sgd", lr=0.01, momentum=0.9,
                    augment="flip-crop", device="cpu", quiet=True, report=False, runs_dir=runs)
    return n / res.history[0]["seconds"]


def _child(arm: str, name: str, root: Path, batch: int, steps: int, workers: int, seed: int,
           tree: str | None = None) -> float:
    """img/s of one arm in a fresh process; `tree`: the convclass source tree it imports (default: this one)."""
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())} if tree else None
    out = subprocess.run([sys.executable, __file__, "--child", arm, "--models", name, "--data", str(root),
                          "--batch", str(batch), "--steps", str(steps), "--workers", str(workers),
                          "--seed", str(seed)], capture_output=True, text=True, env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("IMG_S ")), None)
    if line is None:
        raise SystemExit(f"{arm} arm failed:\n{out.stdout}\n{out.stderr}")
    return float(line.split()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="~/data/cifar10")
    ap.add_argument("--models", nargs="+", default=["cnn3", "resnet18"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--base", default=None, help="another convclass tree (e.g. a git worktree of the commit "
                    "before a change): its arm runs too, in the same alternation, for a before/after in one run")
    ap.add_argument("--child", choices=["plain", "convclass"], help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.data).expanduser()
    if args.child:
        if args.child == "convclass":
            import convclass  # noqa: F401  (before torch, as in any convclass process: its settings apply)
        import torch  # the plain arm's first import: torch's defaults
        torch.manual_seed(args.seed)
        if args.child == "plain":
            from convclass.models import create_model  # the same architecture definition in both arms
            v = plain_loop(create_model(args.models[0], 10, 3, 32), root, args.batch, args.steps, args.workers)
        else:
            v = convclass_loop(args.models[0], root, args.batch, args.steps)
        print(f"IMG_S {v}")
        return
    info = print_machine()  # imports torch first: this process sets nothing its children inherit
    from convclass.data import prepare_data
    t0 = time.perf_counter()
    prepare_data(str(root), img_size=32, data_root="~/.cache/convclass")  # warm the decode cache once
    print(f"convclass data ready in {time.perf_counter() - t0:.1f}s (decode or cache hit)")
    results = {}
    for name in args.models:
        plain, ours, base = [], [], []
        for r in range(args.rounds):
            plain.append(_child("plain", name, root, args.batch, args.steps, args.workers, r))
            ours.append(_child("convclass", name, root, args.batch, args.steps, args.workers, r))
            if args.base:
                base.append(_child("convclass", name, root, args.batch, args.steps, args.workers, r, args.base))
            print(f"  {name} round {r + 1}: plain {plain[-1]:.0f} img/s, convclass {ours[-1]:.0f} img/s"
                  + (f", base tree {base[-1]:.0f} img/s" if base else ""), flush=True)
        p, o = statistics.median(plain), statistics.median(ours)
        results[name] = {"plain_img_s": p, "convclass_img_s": o, "ratio": o / p, "batch": args.batch,
                         "steps": args.steps, "rounds": args.rounds}
        print(f"{name}: plain loop {p:.0f} img/s, convclass {o:.0f} img/s, ratio {o / p:.2f}x (medians)")
        if base:
            b = statistics.median(base)
            results[name].update(base_tree=args.base, base_img_s=b, base_ratio=b / p)
            print(f"{name}: base tree {b:.0f} img/s, ratio {b / p:.2f}x (medians)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
