"""Build the Tiny-ImageNet stand-in for issue 20's 50-class 64x64 photo folder, as symlinks (no image is copied).

The PyTorch 5-block CNN was published (62 %) on a folder of 50 classes of 64x64 photos whose class histogram had
two under-represented classes. That folder is not obtainable, so this takes 50 Tiny-ImageNet classes (a seeded
draw from the standard 200) and cuts two of them down to 200 and 90 training images:

    OUT/train/<wnid>/<name>.JPEG -> SRC/train/<wnid>/images/<name>.JPEG   (500 per class, two classes cut)
    OUT/test/<wnid>/<name>.JPEG  -> SRC/val/images/<name>.JPEG            (Tiny-ImageNet's labelled val: 50 per class)
    OUT/words.txt                -> SRC/words.txt                         (class display names)
    OUT/tiny50.json                                                       (what was drawn, and the counts)

    python examples/seeds/make_tiny50.py ~/data/tiny-imagenet-200 ~/data/tiny50
    python examples/seeds/make_tiny50.py ~/data/tiny-imagenet-200 ~/data/tiny200 --classes 200 --cut ""

The second form is the standard 200-class set in class folders: the GitHub copy of docs/datasets.md adds two
classes and 100 val images that are not in the official set, and they are never taken.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

# Classes and val images that the GitHub copy (rangeetpan/IMagenet) adds to the official 200-class set.
NOT_OFFICIAL = {"n02480855", "n10148035"}
OFFICIAL_VAL = 10_000                     # val_0 ... val_9999
REPO = Path(__file__).resolve().parents[2]


class Refused(Exception):
    """A one-line reason the folder cannot be built."""


def read_source(src: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The official wnids of a Tiny-ImageNet folder and its labelled val images per wnid."""
    for need in ("wnids.txt", "train", "val/val_annotations.txt"):
        if not (src / need).exists():
            raise Refused(f"{src} is not a Tiny-ImageNet folder: {need} is missing (expected wnids.txt, "
                          "train/<wnid>/images/, val/images/ and val/val_annotations.txt; see docs/datasets.md)")
    wnids = sorted({w for w in (src / "wnids.txt").read_text().split() if w not in NOT_OFFICIAL})
    val: dict[str, list[str]] = {w: [] for w in wnids}
    for line in (src / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in val or not _official_val(parts[0]):
            continue
        val[parts[1]].append(parts[0])
    return wnids, val


def _official_val(name: str) -> bool:
    stem = name.split(".")[0]
    return stem.startswith("val_") and stem[4:].isdigit() and int(stem[4:]) < OFFICIAL_VAL


def plan(wnids: list[str], classes: int, cut: list[int], seed: int) -> tuple[list[str], dict[str, int]]:
    """The drawn classes (sorted) and, for the last len(cut) of the draw, how many training images each keeps."""
    if classes > len(wnids):
        raise Refused(f"--classes {classes}: the source has only {len(wnids)} official classes")
    if len(cut) > classes:
        raise Refused(f"--cut names {len(cut)} classes but only {classes} are drawn")
    drawn = random.Random(seed).sample(wnids, classes)
    return sorted(drawn), dict(zip(drawn[classes - len(cut):], cut))


def build(src: Path, out: Path, classes: int = 50, cut: tuple[int, ...] = (200, 90), seed: int = 0) -> dict:
    src, out = src.expanduser().resolve(), out.expanduser().absolute()
    if out.resolve().is_relative_to(REPO):
        raise Refused(f"{out} is inside the repository; data never goes there (use e.g. ~/data/tiny50)")
    if out.exists() and any(out.iterdir()):
        raise Refused(f"{out} exists and is not empty; pass a new folder")
    wnids, val = read_source(src)
    chosen, keep = plan(wnids, classes, list(cut), seed)
    rng = random.Random(seed + 1)
    counts = {}
    for w in chosen:
        folder = src / "train" / w / "images"
        train = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg")) \
            if folder.is_dir() else []
        if not train or not val[w]:
            raise Refused(f"class {w} has no training images in {folder} or no val images; is {src} complete?")
        if w in keep:
            train = sorted(rng.sample(train, min(keep[w], len(train))))
        _links(folder, train, out / "train" / w)
        _links(src / "val" / "images", sorted(val[w]), out / "test" / w)
        counts[w] = {"train": len(train), "test": len(val[w])}
    if (src / "words.txt").is_file():
        os.symlink(src / "words.txt", out / "words.txt")
    manifest = {"source": str(src), "seed": seed, "classes": chosen, "cut": keep, "counts": counts}
    (out / "tiny50.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _links(folder: Path, names: list[str], dest: Path) -> None:
    """One file symlink per image: convclass does not follow symlinked folders, and no image is copied."""
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        os.symlink(folder / n, dest / n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="a Tiny-ImageNet-200 folder (wnids.txt, train/, val/)")
    ap.add_argument("out", type=Path, help="the new folder (outside the repository)")
    ap.add_argument("--classes", type=int, default=50, help="classes drawn (default: %(default)s)")
    ap.add_argument("--cut", default="200,90", help="training images kept in the last classes drawn, comma-"
                                                    "separated; '' cuts none (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the draw and the cut (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        cut = tuple(int(c) for c in args.cut.split(",") if c.strip())
        if args.classes < 2 or any(c < 1 for c in cut):
            raise ValueError
        m = build(args.src, args.out, args.classes, cut, args.seed)
    except ValueError:
        print(f"error: --classes must be at least 2 and --cut positive integers like 200,90 (got {args.classes}, "
              f"{args.cut!r})", file=sys.stderr)
        return 2
    except (Refused, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    train = sum(c["train"] for c in m["counts"].values())
    test = sum(c["test"] for c in m["counts"].values())
    print(f"{args.out}: {len(m['classes'])} classes, {train} training and {test} test images (symlinks); cut: "
          + (", ".join(f"{w} {n}" for w, n in m["cut"].items()) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
