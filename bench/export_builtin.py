"""Write a convclass built-in dataset held as arrays (fashion-mnist, mnist, cifar10, cifar100, digits) as a
folder of PNGs, DEST/train/<class>/NNNNN.png and DEST/test/<class>/NNNNN.png, for the benchmarks that need files
(bench/label_noise.py links and relabels files). Lossless, so the images are exactly the built-in's.

    .venv/bin/python bench/export_builtin.py fashion-mnist ~/data/fashion-mnist
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("dest", type=Path)
    ap.add_argument("--data-root", default="~/.cache/convclass")
    args = ap.parse_args()
    from convclass.data.builtin import load_builtin
    spec = load_builtin(args.name, args.data_root)
    dest = args.dest.expanduser()
    if dest.exists() and any(dest.iterdir()):
        sys.exit(f"{dest} is not empty; remove it or pick another folder")
    for split, s in (("train", spec.train), ("test", spec.test)):
        if s is None or s.arrays is None:
            sys.exit(f"{args.name} has no {split} split held as arrays")
        names = [c.replace("/", "-") for c in spec.classes]  # "T-shirt/top" is a folder name, not a path
        for c in names:
            (dest / split / c).mkdir(parents=True, exist_ok=True)
        for i, (a, y) in enumerate(zip(s.arrays, s.labels)):
            img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
            img.save(dest / split / names[int(y)] / f"{i:05d}.png")
        print(f"{split}: {len(s)} images", flush=True)


if __name__ == "__main__":
    main()
