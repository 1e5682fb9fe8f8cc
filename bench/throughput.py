"""Training throughput: convclass's loop against a plain torchvision loop, same model, batch and optimizer.

The plain loop is written the usual way: ImageFolder + DataLoader(num_workers=2) + RandomCrop/flip transforms.
The convclass arm is `convclass.train` itself (one epoch over batch x steps images, its own CPU settings:
decoded-tensor batches, batch augmentation, channels_last, the allocator setting, the short OpenMP spin that
`import convclass` sets before torch loads). Each measurement runs in a fresh process, so neither arm inherits the
other's process state (the plain child imports torch before convclass, so it runs with torch's defaults); arms
alternate (A B A B ...) so machine noise hits both; medians and their ratio are printed.

    .venv/bin/python bench/throughput.py --data ~/data/cifar10 --models cnn3 resnet18 --steps 30 --rounds 3

--compile adds convclass with torch.compile; --ceiling adds the model's own speed on a batch already in memory,
which bounds the ratio any loop can reach on this machine and precision.
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


def ceiling_loop(model, batch: int, steps: int, compile: bool = False) -> float:
    """The model's own speed: the same steps on one batch already in memory (channels_last, no data work at all).
    No loop feeding real images can beat it in this precision, so ceiling / plain bounds the ratio any data
    pipeline can reach."""
    import torch
    import torch.nn.functional as F
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    net = torch.compile(model) if compile else model

    def step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(2):   # warm-up (and compile) left out, as the plain loop leaves out its workers' start
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def convclass_loop(name: str, root: Path, batch: int, steps: int, compile: bool = False) -> float:
    """One epoch of `convclass.train` over batch*steps training images; img/s of the epoch's training part.
    With compile (`--compile`), two epochs and the second one's img/s: the steady state, after the first epoch
    compiled (its extra seconds are printed as COMPILE_S)."""
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
        res = train(prepared=data, model=name, batch_size=batch, epochs=2 if compile else 1, optimizer="sgd",
                    lr=0.01, momentum=0.9, augment="flip-crop", device="cpu", quiet=True, report=False, runs_dir=runs,
                    compile=compile)
    if compile:
        print(f"COMPILE_S {res.history[0]['seconds'] - res.history[1]['seconds']}")
    return n / res.history[-1]["seconds"]


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
    for ln in out.stdout.splitlines():
        if ln.startswith("COMPILE_S "):
            print(f"    ({arm}: the first epoch took {float(ln.split()[1]):.0f} s more: compiling)")
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
    ap.add_argument("--compile", action="store_true", help="a third arm: convclass with --compile (torch.compile), "
                    "timed on its second epoch (the first one compiles; the extra seconds are printed)")
    ap.add_argument("--ceiling", action="store_true", help="another arm: the model's steps on one batch in memory "
                    "(no data work; compiled too with --compile): the fastest any loop can train it here")
    ap.add_argument("--child", choices=["plain", "convclass", "convclass-compile", "ceiling", "ceiling-compile"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.data).expanduser()
    if args.child:
        if args.child == "convclass":
            import convclass  # noqa: F401  (before torch, as in any convclass process: its settings apply)
        import torch  # the plain arm's first import: torch's defaults
        torch.manual_seed(args.seed)
        if args.child == "plain" or args.child.startswith("ceiling"):
            from convclass.models import create_model  # the same architecture definition in every arm
            model = create_model(args.models[0], 10, 3, 32)
            if args.child == "plain":
                v = plain_loop(model, root, args.batch, args.steps, args.workers)
            else:
                v = ceiling_loop(model, args.batch, args.steps, args.child == "ceiling-compile")
        else:
            v = convclass_loop(args.models[0], root, args.batch, args.steps, args.child == "convclass-compile")
        print(f"IMG_S {v}")
        return
    info = print_machine()  # imports torch first: this process sets nothing its children inherit
    from convclass.data import prepare_data
    t0 = time.perf_counter()
    prepare_data(str(root), img_size=32, data_root="~/.cache/convclass")  # warm the decode cache once
    print(f"convclass data ready in {time.perf_counter() - t0:.1f}s (decode or cache hit)")
    results = {}
    for name in args.models:
        plain, ours, base, comp, ceil, ceil_c = [], [], [], [], [], []
        for r in range(args.rounds):
            plain.append(_child("plain", name, root, args.batch, args.steps, args.workers, r))
            ours.append(_child("convclass", name, root, args.batch, args.steps, args.workers, r))
            if args.base:
                base.append(_child("convclass", name, root, args.batch, args.steps, args.workers, r, args.base))
            if args.compile:
                comp.append(_child("convclass-compile", name, root, args.batch, args.steps, args.workers, r))
            if args.ceiling:
                ceil.append(_child("ceiling", name, root, args.batch, args.steps, args.workers, r))
                if args.compile:
                    ceil_c.append(_child("ceiling-compile", name, root, args.batch, args.steps, args.workers, r))
            print(f"  {name} round {r + 1}: plain {plain[-1]:.0f} img/s, convclass {ours[-1]:.0f} img/s"
                  + (f", base tree {base[-1]:.0f} img/s" if base else "")
                  + (f", convclass --compile {comp[-1]:.0f} img/s" if comp else "")
                  + (f", ceiling {ceil[-1]:.0f} img/s" if ceil else "")
                  + (f", ceiling compiled {ceil_c[-1]:.0f} img/s" if ceil_c else ""), flush=True)
        p, o = statistics.median(plain), statistics.median(ours)
        results[name] = {"plain_img_s": p, "convclass_img_s": o, "ratio": o / p, "batch": args.batch,
                         "steps": args.steps, "rounds": args.rounds}
        print(f"{name}: plain loop {p:.0f} img/s, convclass {o:.0f} img/s, ratio {o / p:.2f}x (medians)")
        if base:
            b = statistics.median(base)
            results[name].update(base_tree=args.base, base_img_s=b, base_ratio=b / p)
            print(f"{name}: base tree {b:.0f} img/s, ratio {b / p:.2f}x (medians)")
        if comp:
            c = statistics.median(comp)
            results[name].update(compile_img_s=c, compile_ratio=c / p)
            print(f"{name}: convclass --compile {c:.0f} img/s, ratio {c / p:.2f}x (medians; second epoch)")
        for label, key, vals in (("ceiling (one batch in memory)", "ceiling", ceil),
                                 ("ceiling, compiled", "ceiling_compile", ceil_c)):
            if vals:
                c = statistics.median(vals)
                results[name].update({f"{key}_img_s": c, f"{key}_ratio": c / p})
                print(f"{name}: {label} {c:.0f} img/s, {c / p:.2f}x the plain loop: the most any data pipeline "
                      f"can reach in this precision (medians)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
