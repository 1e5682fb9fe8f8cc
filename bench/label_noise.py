"""Label-issue detection on injected noise (issue 18): flip a known fraction of the labels of a class-folder
dataset, run `label-issues` on the noisy set, and score the flagged images against the flips; then train the
same recipe on (a) the noisy labels, (b) the noisy labels minus the flagged images (label-issues'
without_issues.csv: the flagged label errors left out; outliers stay, label-issues' default --leave-out label),
(b') the noisy labels with the flagged label errors given their suggested class (relabelled.csv), (c) the
clean labels, all tested on the untouched test/.

Noise: symmetric (a flipped image gets any other class, uniformly) or pairs (class-dependent: class c always
becomes class c+1 in folder order, the same fraction of every class). Nothing under DATA is written: the noisy
sets are folders of symlinks under --work.

Printed: precision and recall of the flagged label issues against the flips, the four test accuracies, and the
share of the accuracy the noise cost that leaving the flagged images out, or relabelling them, recovers
((b - a) / (c - a), (b' - a) / (c - a)).

    .venv/bin/python bench/label_noise.py --data ~/data/cifar10 --train-images 10000 --noise 0.1 --recipe fast

--arm-set KEY=VALUE (repeatable) trains the arms with other options than the ranking's folds, e.g. a plain
recipe that memorises the flips (--arm-set recipe=none --arm-set epochs=30), and --arm-seeds N repeats every arm
with N seeds, the arms alternating within each round (so a slow spell of the machine hits them all), printing the
mean and spread: one run's test accuracy moves by several tenths of a point with the seed, as much as the effect
measured.

--from-cv FOLDER takes the folds of an earlier run's label-issues (--work W: W/runs/noisy, same --seed and sizes,
so the same images and flips) instead of training them again: issues are ranked anew by the current code in
seconds, and the printed time is that of the ranking only. --arms picks which training arms run.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

ARMS = ("noisy", "noisy-minus-flagged", "noisy-relabelled", "clean")
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def class_files(folder: Path) -> tuple[list[str], list[Path], np.ndarray]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for c, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        files += found
        labels += [c] * len(found)
    return classes, files, np.asarray(labels)


def draw(labels: np.ndarray, n: int | None, rng) -> np.ndarray:
    """A stratified sample of n indices (all when n is None or too large), sorted."""
    if not n or n >= len(labels):
        return np.arange(len(labels))
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        out += rng.choice(idx, round(n * len(idx) / len(labels)), replace=False).tolist()
    return np.sort(np.asarray(out))


def flip(labels: np.ndarray, rate: float, kind: str, k: int, rng) -> np.ndarray:
    """Noisy copy of labels: round(rate * n) flipped (per class for pairs), each to another class."""
    noisy = labels.copy()
    if kind == "symmetric":
        picked = rng.choice(len(labels), round(rate * len(labels)), replace=False)
        noisy[picked] = (labels[picked] + rng.integers(1, k, len(picked))) % k  # never the true class
    else:
        for c in range(k):
            idx = np.flatnonzero(labels == c)
            noisy[rng.choice(idx, round(rate * len(idx)), replace=False)] = (c + 1) % k
    return noisy


def link_folder(root: Path, files: list[Path], labels, classes: list[str], keep=None) -> Path:
    """root/<class>/<index>.<ext> symlinks: the index names the image, so flags map back to the flips."""
    shutil.rmtree(root, ignore_errors=True)  # a folder of links an earlier run left under --work
    for i, (f, y) in enumerate(zip(files, labels)):
        if keep is None or i in keep:
            (root / classes[y]).mkdir(parents=True, exist_ok=True)
            os.symlink(f.resolve(), root / classes[y] / f"{i:06d}{f.suffix}")
    return root


def test_accuracy(train_set: tuple, test_files, test_labels, classes, work: Path, name: str, opts: dict) -> float:
    from convclass import train
    root = work / name
    link_folder(root / "train", *train_set)
    link_folder(root / "test", test_files, test_labels, classes)
    t = time.perf_counter()
    res = train(data=str(root), runs_dir=str(work / "runs"), name=name, **opts)
    acc = res.test_metrics["accuracy"]
    print(f"  ({name}: {time.perf_counter() - t:.0f} s, test accuracy {acc:.4f})", flush=True)
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("~/data/cifar10").expanduser(),
                    help="a folder with train/ and test/ class folders")
    ap.add_argument("--train-images", type=int, default=10_000, help="stratified subset of train/ to noise")
    ap.add_argument("--test-images", type=int, default=None, help="stratified subset of test/ (default: all)")
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of the training labels flipped")
    ap.add_argument("--kind", choices=["symmetric", "pairs"], default="symmetric")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--model", default=None, help="default: the recipe's")
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (fast: 2000, too big for a "
                                                                 "few hundred images)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-cv", type=Path, default=None, help="reuse this label-issues cv folder's folds")
    ap.add_argument("--arms", default=",".join(ARMS),
                    help=f"comma-separated, from {','.join(ARMS)}; none: no training arm")
    ap.add_argument("--arm-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a training option of the arms only, e.g. recipe=none, epochs=30")
    ap.add_argument("--arm-seeds", type=int, default=1, help="seeds per training arm (mean and spread printed)")
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the symlinked sets (replaced) and runs (default: temp)")
    args = ap.parse_args()
    print_machine()
    rng = np.random.default_rng(args.seed)
    classes, files, labels = class_files(args.data.expanduser() / "train")
    keep = draw(labels, args.train_images, rng)
    files, labels = [files[i] for i in keep], labels[keep]
    t_classes, test_files, test_labels = class_files(args.data.expanduser() / "test")
    assert t_classes == classes, "train/ and test/ must hold the same class folders"
    pick = draw(test_labels, args.test_images, rng)
    test_files, test_labels = [test_files[i] for i in pick], test_labels[pick]
    noisy = flip(labels, args.noise, args.kind, len(classes), rng)
    flipped = set(np.flatnonzero(noisy != labels).tolist())
    work = args.work or Path(tempfile.mkdtemp(prefix="label_noise-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(labels)} training images of {args.data}, {len(flipped)} labels flipped ({args.kind}, "
          f"{args.noise:.0%}); {len(test_labels)} test images; work folder {work}", flush=True)
    opts = {"recipe": args.recipe, "seed": args.seed, "quiet": True, "report": False,
            "data_root": str(work / "cache"), **{k: v for k, v in (("model", args.model), ("epochs", args.epochs),
                                                                          ("batch_size", args.batch_size))
                                                 if v is not None}}

    from convclass.pipeline.label_issues import find_label_issues
    t, cpu0 = time.perf_counter(), _cpu_seconds()
    noisy_dir = str(link_folder(work / "noisy", files, noisy, classes))
    if args.from_cv:
        print(f"folds reused from {args.from_cv}: the time below is the ranking's only", flush=True)
        r = find_label_issues(from_cv=args.from_cv, quiet=True)
    else:
        r = find_label_issues(folds=args.folds, data=noisy_dir, runs_dir=str(work / "runs"), name="noisy", **opts)
    t_issues, cpu_issues = time.perf_counter() - t, _cpu_seconds() - cpu0
    flagged = {int(Path(p).stem) for p, kind in _csv(r["paths"]["csv"], "path", "kind") if kind == "label"}
    kept = {int(Path(p).stem) for (p,) in _csv(r["paths"]["without_issues"], "path")}
    hit = len(flagged & flipped)
    precision, recall = hit / max(len(flagged), 1), hit / max(len(flipped), 1)
    # On a shared machine wall time depends on the neighbours; CPU seconds / cores is what 2 idle cores would take.
    print(f"label-issues: {t_issues / 60:.1f} min wall, {cpu_issues / 60:.1f} CPU min "
          f"({cpu_issues / 60 / (os.cpu_count() or 1):.1f} min of all {os.cpu_count()} cores), "
          f"{len(flagged)} label issues flagged, {hit} of them injected; "
          f"{len(labels) - len(kept)} images left out of without_issues.csv", flush=True)

    relabelled = noisy.copy()  # label-issues' relabelled.csv: flagged label errors given the suggested class
    for path, name in _csv(r["paths"]["relabelled"], "path", "label"):
        relabelled[int(Path(path).stem)] = classes.index(name)
    print(f"relabelled.csv: {(relabelled != labels).sum()} wrong labels left of {len(flipped)}", flush=True)
    arms = {"noisy": (noisy, None), "noisy-minus-flagged": (noisy, kept), "noisy-relabelled": (relabelled, None),
            "clean": (labels, None)}
    chosen = [a.strip() for a in args.arms.split(",") if a.strip() and a.strip() != "none"]  # none: ranking only
    if unknown := set(chosen) - set(ARMS):
        raise SystemExit(f"--arms: unknown {sorted(unknown)}; pick from {','.join(ARMS)}")
    arm_opts = {**opts, **_settings(args.arm_set)}
    runs: dict[str, list[float]] = {name: [] for name in ARMS if name in chosen}
    for i in range(args.arm_seeds):  # arms alternate within each seed's round
        seed = args.seed + i
        for name in runs:
            lab, keep_set = arms[name]
            runs[name].append(test_accuracy((files, lab, classes, keep_set), test_files, test_labels, classes, work,
                                            f"train-{name}" + (f"-s{seed}" if args.arm_seeds > 1 else ""),
                                            {**arm_opts, "seed": seed}))
    acc = {name: float(np.mean(v)) for name, v in runs.items()}
    cost = acc["clean"] - acc["noisy"] if {"clean", "noisy"} <= set(acc) else float("nan")
    print(f"\nlabel noise {args.noise:.0%} {args.kind}, {len(labels)} images, {args.folds}-fold {args.recipe}"
          + (f", {args.epochs} epochs" if args.epochs else ""))
    print(f"  flagged label issues: precision {precision:.3f}  recall {recall:.3f}  ({len(flagged)} flagged, "
          f"{len(flipped)} injected)  label-issues {t_issues / 60:.1f} min wall, "
          f"{cpu_issues / 60:.1f} CPU min")
    if args.arm_set:
        print("  training arms: " + " ".join(args.arm_set))
    if args.arm_seeds > 1:
        print(f"  test accuracy, mean of {args.arm_seeds} seeds (min-max):")
        for name, v in runs.items():
            print(f"    {name:20s} {np.mean(v):.4f}  ({min(v):.4f}-{max(v):.4f}: " + " ".join(f"{x:.4f}" for x in v)
                  + ")")
    else:
        print("  test accuracy: " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    for name in ("noisy-minus-flagged", "noisy-relabelled"):
        if name not in acc or cost != cost:
            continue
        recovered = (acc[name] - acc["noisy"]) / cost if cost > 0 else float("nan")
        print(f"  {name}: recovered {recovered:.0%} of the {cost:.4f} the noise cost")


def _settings(items: list[str]) -> dict:
    """--arm-set KEY=VALUE items as TrainConfig overrides, values read as the CLI's KEY=VALUE options are
    (parse_value, as time_to_accuracy.py's --set), except the recipe's name, kept as text (none: the plain
    defaults, where parse_value would make it None)."""
    from convclass.commands.common import parse_value
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--arm-set {item!r}: write KEY=VALUE, e.g. epochs=30")
        key = key.strip().replace("-", "_")
        out[key] = value if key == "recipe" else parse_value(value)
    return out


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (loader workers)."""
    import resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _csv(path, *columns):
    with open(path, newline="") as f:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(f)]


if __name__ == "__main__":
    main()
