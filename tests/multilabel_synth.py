"""Tiny multi-label image sets for the tests: each label paints its own quadrant in its own colour, so a small
model learns which labels an image holds in an epoch or two."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LABELS = {"red": ((200, 40, 40), (0, 0)), "green": ((40, 200, 40), (0, 1)), "blue": ((40, 40, 200), (1, 0))}


def multilabel_image(labels, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.clip(110 + rng.normal(0, 20, (size, size, 3)), 0, 255)
    h = size // 2
    for name in labels:
        colour, (r, c) = LABELS[name]
        a[r * h:(r + 1) * h, c * h:(c + 1) * h] = colour
    return a.astype(np.uint8)


def label_sets(n: int, seed: int = 0, rare: float = 0.5) -> list[list[str]]:
    """n label sets: red and green each on half the images, blue on a `rare` share; some images have none."""
    rng = np.random.default_rng(seed)
    return [[k for k, p in (("red", 0.5), ("green", 0.5), ("blue", rare)) if rng.random() < p] for _ in range(n)]


def write_multilabel_csv(root: Path, n: int = 48, sep: str = "|", rare: float = 0.5, seed: int = 0,
                         one_hot: bool = False) -> Path:
    """root/images/<i>.png and root/labels.csv (`image,labels` with `sep` between labels, or one-hot columns)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    sets = label_sets(n, seed, rare)
    lines = ["image," + ",".join(LABELS) if one_hot else "image,labels"]
    for i, labels in enumerate(sets):
        Image.fromarray(multilabel_image(labels, seed=seed * 1000 + i)).save(root / "images" / f"{i}.png")
        cells = [str(int(k in labels)) for k in LABELS] if one_hot else [f'"{sep.join(labels)}"']
        lines.append(f"images/{i}.png," + ",".join(cells))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"
