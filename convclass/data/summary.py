"""A short data summary from labels alone: class counts per split and the imbalance ratio."""
from __future__ import annotations

import numpy as np

__all__ = ["class_counts", "count_spread", "imbalance_ratio", "data_summary", "format_data_summary"]


def class_counts(labels, num_classes: int) -> list[int]:
    if np.ndim(labels) == 2:  # multi-label rows: images holding each label
        return np.asarray(labels).sum(0).astype(np.int64).tolist() if len(labels) else [0] * num_classes
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).tolist()


def imbalance_ratio(counts) -> float:
    """Largest class count over the smallest non-empty one (1.0 = balanced); inf when a class is empty."""
    c = np.asarray(counts)
    if not len(c) or c.max() == 0:
        return float("nan")
    return float(c.max() / c.min()) if c.min() > 0 else float("inf")


def data_summary(prepared) -> dict:
    """JSON-ready summary of a PreparedData: sizes, per-split class counts, imbalance, broken files."""
    k = len(prepared.classes)
    splits = {name: class_counts(getattr(prepared, name).y.numpy(), k) for name in ("train", "val", "test")}
    return {"name": prepared.name, "classes": list(prepared.classes), "img_size": prepared.img_size,
            "channels": prepared.channels, "counts": splits, "n": {s: int(sum(c)) for s, c in splits.items()},
            "imbalance_ratio": imbalance_ratio(splits["train"]), "broken": len(prepared.broken),
            "near_duplicates": prepared.near_duplicates,
            "mean": list(prepared.mean), "std": list(prepared.std), "notes": list(prepared.notes)}


def count_spread(counts, classes: list) -> str:
    """"smallest N (class), largest M (class)", or "every class N" when they are equal (naming one class as both
    the smallest and the largest says nothing)."""
    counts = np.asarray(counts)
    lo, hi = int(counts.argmin()), int(counts.argmax())
    if counts[lo] == counts[hi]:
        return f"every class {counts[lo]:,}"
    return f"smallest {counts[lo]:,} ({classes[lo]}), largest {counts[hi]:,} ({classes[hi]})"


def format_data_summary(s: dict, max_classes: int = 12) -> str:
    """A few lines for the start of `train`: smallest and largest class, imbalance, and counts if few classes."""
    classes, counts = s["classes"], np.asarray(s["counts"]["train"])
    lines = [f"class counts (train): {count_spread(counts, classes)}, imbalance ratio {s['imbalance_ratio']:.2f}"]
    if len(classes) <= max_classes:
        lines.append("  " + ", ".join(f"{c} {n}" for c, n in zip(classes, counts.tolist())))
    if s["imbalance_ratio"] > 3:
        lines.append("  note: classes are imbalanced; consider --balance loss or --balance sampler")
    if s.get("broken"):
        lines.append(f"  {s['broken']} unreadable file(s) skipped")
    return "\n".join(lines)
