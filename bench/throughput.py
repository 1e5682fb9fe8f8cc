"""Training throughput: convclass's loop against a plain torchvision loop, same model, batch and optimizer.

The plain loop is written the usual way: ImageFolder + DataLoader(num_workers=2) + RandomCrop/flip transforms.
Arms alternate (A B A B ...) so machine noise hits both; medians and their ratio are printed.

    .venv/bin/python bench/throughput.py --data ~/data/cifar10 --models cnn3 resnet18 --steps 30 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402


def plain_loop(model, root: Path, batch: int, steps: int, workers: int) -> float:
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


def convclass_loop(model, data, batch: int, steps: int) -> float:
    from convclass.config import TrainConfig
    from convclass.data import build_augment
    from convclass.data.prepare import PreparedData, TensorSplit
    from convclass.training.fit import train_one_epoch
    n = batch * steps
    idx = torch.randperm(len(data.train))[:n]
    sub = PreparedData(**{**data.__dict__, "train": TensorSplit(data.train.x[idx], data.train.y[idx])})
    cfg = TrainConfig(batch_size=batch, epochs=1, quiet=True, optimizer="sgd", lr=0.01, augment="flip-crop")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    aug = build_augment("flip-crop", data.img_size, data.channels)
    t0 = time.perf_counter()
    train_one_epoch(model, sub, opt, None, "never", cfg, 0, torch.device("cpu"), aug, None, None, scaler,
                    lambda it, desc="": it)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="~/data/cifar10")
    ap.add_argument("--models", nargs="+", default=["cnn3", "resnet18"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from convclass.data import prepare_data
    from convclass.models import create_model
    info = print_machine()
    root = Path(args.data).expanduser()
    t0 = time.perf_counter()
    data = prepare_data(str(root), img_size=32, data_root="~/.cache/convclass")
    print(f"convclass data ready in {time.perf_counter() - t0:.1f}s (decode or cache hit)")
    results = {}
    for name in args.models:
        plain, ours = [], []
        for r in range(args.rounds):
            torch.manual_seed(r)
            plain.append(plain_loop(create_model(name, 10, 3, 32), root, args.batch, args.steps, args.workers))
            torch.manual_seed(r)
            ours.append(convclass_loop(create_model(name, 10, 3, 32), data, args.batch, args.steps))
            print(f"  {name} round {r + 1}: plain {plain[-1]:.0f} img/s, convclass {ours[-1]:.0f} img/s")
        p, o = statistics.median(plain), statistics.median(ours)
        results[name] = {"plain_img_s": p, "convclass_img_s": o, "ratio": o / p, "batch": args.batch,
                         "steps": args.steps, "rounds": args.rounds}
        print(f"{name}: plain loop {p:.0f} img/s, convclass {o:.0f} img/s, ratio {o / p:.2f}x (medians)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
