"""A real multi-label benchmark: 2x2 mosaics of CIFAR-10 photos, each labelled with the classes it shows.

Each mosaic puts four 32x32 CIFAR-10 images (each photo used once, so no photo is in two mosaics) on a 64x64 grid;
a quadrant is left blank (grey noise) with probability --blank, so a mosaic shows 0 to 4 classes. Training
mosaics come from CIFAR-10's train/ photos, the test mosaics from its test/ photos.

Two arms train with the same model, epochs and seed through the CLI, then both are scored by this script on the
same test mosaics with convclass.metrics.multilabel_metrics:

  multi-label   `convclass train --data train.csv` (labels `cat|dog|ship`): sigmoid + BCE, per-label thresholds
                tuned on its validation split;
  top class     the same mosaics with one label each (the class filling most quadrants, ties to the first) and
                `--task single`: a softmax classifier whose answer is its top class only. Its mAP ranks labels by
                the softmax probabilities; its F1 counts the top class as the one label predicted.

With --asl a third arm trains the multi-label set with the asymmetric loss (Ridnik et al. 2021) instead of BCE.

Printed: the machine, each arm's wall time, then mAP, macro and micro F1 and subset accuracy of both arms.

Small check (about 4 min on 2 busy cores):
    .venv/bin/python bench/multilabel.py --train 1500 --test 500 --epochs 4 --model cnn3 --size 32
Full run (hours on a CPU; minutes on a GPU):
    .venv/bin/python bench/multilabel.py --train 12000 --test 2500 --epochs 30 --model resnet18 --size 64
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TILE = 32


def photos(root: Path) -> tuple[list[str], list[Path]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    return classes, [p for c in classes for p in sorted((root / c).glob("*.*"))]


def make_mosaics(root: Path, n: int, out: Path, blank: float, seed: int) -> tuple[list[str], list[list[str]]]:
    """out/<i>.png mosaics and out.csv / out_top.csv (multi-label, top class); returns (classes, label sets)."""
    classes, files = photos(root)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    if n * 4 > len(files):
        raise SystemExit(f"{root} has {len(files)} photos, fewer than the {n * 4} that {n} mosaics need")
    out.mkdir(parents=True, exist_ok=True)
    sets, multi_rows, top_rows = [], ["image,labels"], ["image,label"]
    for i in range(n):
        canvas = np.clip(110 + rng.normal(0, 20, (2 * TILE, 2 * TILE, 3)), 0, 255).astype(np.uint8)
        shown = []
        for q in range(4):
            if rng.random() < blank:
                continue
            path = files[order[i * 4 + q]]
            canvas[(q // 2) * TILE:(q // 2 + 1) * TILE, (q % 2) * TILE:(q % 2 + 1) * TILE] = \
                np.asarray(Image.open(path).convert("RGB").resize((TILE, TILE)))
            shown.append(path.parent.name)
        Image.fromarray(canvas).save(out / f"{i:05d}.png")
        labels = sorted(set(shown))
        sets.append(labels)
        multi_rows.append(f'{out.name}/{i:05d}.png,"{"|".join(labels)}"')
        if shown:  # the top-class arm cannot learn from an empty mosaic
            top_rows.append(f"{out.name}/{i:05d}.png,{max(labels, key=lambda c: (shown.count(c), -shown.index(c)))}")
    (out.parent / f"{out.name}.csv").write_text("\n".join(multi_rows) + "\n")
    (out.parent / f"{out.name}_top.csv").write_text("\n".join(top_rows) + "\n")
    return classes, sets


def train(csv: Path, runs: Path, name: str, args, *extra: str) -> tuple[Path, float]:
    cmd = [sys.executable, "-m", "convclass", "train", "--data", str(csv), "--model", args.model, "--epochs",
           str(args.epochs), "--img-size", str(args.size), "--batch-size", "64", "--schedule", "onecycle",
           "--lr", str(args.lr), "--test-split", "0.05", "--runs-dir", str(runs), "--name", name, "--no-report",
           "--data-root", str(runs / "cache"), "--device", args.device, *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return runs / name, time.perf_counter() - t0


def score(run: Path, files: list[str], y: np.ndarray, classes: list[str], top_only: bool) -> dict:
    from convclass import load_model
    from convclass.metrics import multilabel_metrics
    lm = load_model(run, device="cpu")
    x, ok, bad = lm.preprocess_files(files)
    assert not bad, bad
    probs = lm.predict_proba(x).numpy()
    cols = [lm.classes.index(c) if c in lm.classes else None for c in classes]
    probs = np.stack([probs[:, j] if j is not None else np.zeros(len(probs)) for j in cols], 1)
    if not top_only:
        t = [lm.thresholds[j] if j is not None else 0.5 for j in cols]
        return multilabel_metrics(y, probs, classes, t)
    m = multilabel_metrics(y, probs, classes)                     # mAP: the softmax ranks the labels
    top = np.eye(len(classes))[probs.argmax(1)]
    f = multilabel_metrics(y, top, classes)                       # F1 etc.: the top class is the answer
    return {**f, "map": m["map"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cifar", default="~/data/cifar10", help="CIFAR-10 as train/<class>/ and test/<class>/ photos")
    ap.add_argument("--train", type=int, default=1500, help="training mosaics (val and a small test are carved)")
    ap.add_argument("--test", type=int, default=500, help="test mosaics, from the test photos")
    ap.add_argument("--blank", type=float, default=0.25, help="chance a quadrant is blank")
    ap.add_argument("--model", default="cnn3")
    ap.add_argument("--size", type=int, default=32, help="pixels the model sees (the mosaics are 64x64)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.003, help="peak of the onecycle schedule (Adam)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--asl", action="store_true", help="a third arm: multi-label with the asymmetric loss (--loss asl)")
    ap.add_argument("--workdir", default=None, help="keep mosaics and runs here (default: a temporary folder)")
    args = ap.parse_args()
    print_machine()
    cifar = Path(args.cifar).expanduser()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        classes, _ = make_mosaics(cifar / "train", args.train, work / "train", args.blank, seed=0)
        _, test_sets = make_mosaics(cifar / "test", args.test, work / "test", args.blank, seed=1)
        files = [str(work / "test" / f"{i:05d}.png") for i in range(args.test)]
        y = np.asarray([[int(c in s) for c in classes] for s in test_sets])
        print(f"{args.train} training / {args.test} test mosaics, {y.sum(1).mean():.2f} labels per test mosaic")
        multi, t_multi = train(work / "train.csv", work / "runs", "multi", args)
        top, t_top = train(work / "train_top.csv", work / "runs", "top", args, "--task", "single")
        rows = [("multi-label (sigmoid, tuned thresholds)", score(multi, files, y, classes, False), t_multi),
                ("top class only (softmax)", score(top, files, y, classes, True), t_top)]
        if args.asl:  # ASL's defaults (gamma- 4, gamma+ 0, clip 0.05), the rest as the multi-label arm
            asl, t_asl = train(work / "train.csv", work / "runs", "asl", args, "--loss", "asl")
            rows.insert(1, ("multi-label, asymmetric loss", score(asl, files, y, classes, False), t_asl))
    print(f"{'arm':<42} {'mAP':>6} {'macro F1':>9} {'micro F1':>9} {'subset acc':>11} {'train s':>8}")
    for name, m, secs in rows:
        print(f"{name:<42} {m['map']:6.3f} {m['f1_macro']:9.3f} {m['f1_micro']:9.3f} {m['subset_accuracy']:11.3f} "
              f"{secs:8.0f}")


if __name__ == "__main__":
    main()
