"""The CPU settings convclass chose, each measured against its alternative in fresh processes, arms alternating:
the glibc allocator setting (and jemalloc/tcmalloc through LD_PRELOAD when installed), channels_last, micro-batch
size, and torch.compile. Compute only (random tensors), training steps of SGD; prints img/s medians.

    .venv/bin/python bench/cpu_choices.py --rounds 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

PRELOADS = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
            "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}

CHILD = r"""
import os, sys, time
model_name, batch, micro, cl, alloc, compile_, steps = sys.argv[1:8]
batch, micro, steps = int(batch), int(micro), int(steps)
if alloc == "mallopt":
    from convclass.runtime import tune_cpu_allocator
    assert tune_cpu_allocator()
import torch, torch.nn.functional as F
from convclass.models import create_model
torch.set_num_threads(2)
torch.manual_seed(0)
args = {"widths": "64,256,256"} if model_name == "airbench" else {}
model = create_model(model_name, 10, 3, 32, **args)
x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
if cl == "1":
    model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
fwd = torch.compile(model) if compile_ == "1" else model
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
ts = []
for i in range(steps + 2):
    t = time.perf_counter()
    opt.zero_grad()
    for lo in range(0, batch, micro):
        (F.cross_entropy(fwd(x[lo:lo + micro]), y[lo:lo + micro]) * (min(micro, batch - lo) / batch)).backward()
    opt.step()
    ts.append(time.perf_counter() - t)
print("IMG_S", batch / sorted(ts[2:])[len(ts[2:]) // 2])
"""


def arm(model: str, batch: int, micro: int, cl: bool, alloc: str, compile_: bool, steps: int) -> float:
    env = dict(os.environ)
    if alloc in PRELOADS:
        env["LD_PRELOAD"] = PRELOADS[alloc]
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(batch), str(micro), "1" if cl else "0", alloc,
                          "1" if compile_ else "0", str(steps)], capture_output=True, text=True, env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("IMG_S")), None)
    if line is None:
        raise SystemExit(f"arm failed: {out.stderr[-2000:]}")
    return float(line.split()[1])


def compare(title: str, arms: dict[str, dict], rounds: int, steps: int) -> None:
    got: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(rounds):
        for k, kw in arms.items():
            got[k].append(arm(steps=steps, **kw))
    base = statistics.median(next(iter(got.values())))
    print(title)
    for k, v in got.items():
        m = statistics.median(v)
        print(f"  {k:<28} {m:7.0f} img/s  ({m / base:.2f}x)  rounds: {', '.join(f'{x:.0f}' for x in v)}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = ap.parse_args()
    print_machine()
    air = dict(model="airbench", batch=256, micro=256, cl=True, alloc="glibc", compile_=False)
    allocs = {"glibc default": air, "mallopt (convclass)": {**air, "alloc": "mallopt"}}
    for name, path in PRELOADS.items():
        if Path(path).exists():
            allocs[f"{name} (LD_PRELOAD)"] = {**air, "alloc": name}
    compare("allocator, airbench 64/256/256, batch 256, channels_last:", allocs, args.rounds, args.steps)
    for model, batch in (("resnet18", 128), ("cnn3", 128)):
        base = dict(model=model, batch=batch, micro=batch, cl=False, alloc="glibc", compile_=False)
        compare(f"memory format x allocator, {model}, batch {batch}:",
                {"NCHW, glibc": base, "NCHW, mallopt": {**base, "alloc": "mallopt"},
                 "channels_last, glibc": {**base, "cl": True},
                 "channels_last, mallopt": {**base, "cl": True, "alloc": "mallopt"}}, args.rounds, args.steps)
    mb = {**air, "alloc": "mallopt"}
    compare("micro-batches of one 256-image step, airbench:",
            {f"chunks of {m}": {**mb, "micro": m} for m in (256, 128, 64)}, args.rounds, args.steps)
    if args.compile:
        compare("torch.compile, airbench, batch 256 (compile time excluded):",
                {"eager": mb, "compiled": {**mb, "compile_": True}}, args.rounds, args.steps)


if __name__ == "__main__":
    main()
