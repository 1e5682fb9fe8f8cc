"""Training img/s of the `airbench` net under the CPU choices the fast recipe makes: widths, memory format,
batch size, threads. Compute only (random input tensors), a few steps each after one warm-up step.

    .venv/bin/python bench/fast_choices.py --threads 2 --steps 4
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402


def img_per_s(widths: str, channels_last: bool, batch: int, steps: int) -> float:
    from convclass.models import create_model
    torch.manual_seed(0)
    model = create_model("airbench", 10, 3, 32, widths=widths, channels_last=channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.85, nesterov=True)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for i in range(steps + 1):
        if i == 1:  # the first step pays one-off allocation and kernel selection
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", nargs="+", default=["64,256,256", "64,128,128", "48,96,96"])
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_machine()
    for widths, cl, batch in itertools.product(args.widths, (False, True), args.batches):
        print(f"widths {widths:>10}  {'channels_last' if cl else 'NCHW':>13}  batch {batch:4d}: "
              f"{img_per_s(widths, cl, batch, args.steps):.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
