"""`convclass inspect`: what is in a dataset before training on it, and whether the test split leaks."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from ..data import find_data, stratified_split
from ..data.summary import class_counts, count_spread, imbalance_ratio
from ..safeio import spreadsheet_safe
from .duplicates import count_pairs, find_duplicates
from .figures import plot_class_counts, plot_samples, plot_sizes
from .scan import scan_split

__all__ = ["inspect_data", "format_inspection"]


def _splits(spec, val_split: float, test_split: float, seed: int) -> dict:
    """The splits as `train` will see them: missing test/val carved exactly as prepare_data does."""
    train, val, test = spec.train, spec.val, spec.test
    if test is None:
        keep, held = stratified_split(train.labels, test_split, seed)
        train, test = train.subset(keep), train.subset(held)
    if val is None:
        keep, held = stratified_split(train.labels, val_split, seed + 1)
        train, val = train.subset(keep), train.subset(held)
    return {"train": train, "val": val, "test": test}


def inspect_data(data: str, *, data_root: str = "~/.cache/convclass", val_split: float = 0.1,
                 test_split: float = 0.2, seed: int = 0, output: str | Path | None = None,
                 near_distance: int = 6) -> dict:
    """Class counts, sizes, modes, broken files, exact and near duplicates within and across splits.

    Writes inspect.json, duplicates.csv and class_counts.png / sizes.png / samples.png to `output`
    (default runs/inspect-<name>) and returns the same dict as inspect.json.
    """
    spec = find_data(data, data_root)
    splits = _splits(spec, val_split, test_split, seed)
    k = len(spec.classes)
    scans = {name: scan_split(s) for name, s in splits.items()}
    counts = {name: class_counts(sc.labels[sc.ok], k) for name, sc in scans.items()}
    sizes = [sz for sc in scans.values() for sz, ok in zip(sc.sizes, sc.ok) if ok]
    modes = [m for sc in scans.values() for m, ok in zip(sc.modes, sc.ok) if ok]
    dups = find_duplicates(scans, spec.classes, near_distance)
    out = Path(output) if output else Path("runs") / f"inspect-{spec.name}"
    out.mkdir(parents=True, exist_ok=True)
    thumbs = {}
    for sc in scans.values():
        for c, t in sc.thumbs.items():
            thumbs.setdefault(c, []).extend(t)
    figures = {"class_counts": str(plot_class_counts(counts, spec.classes, out / "class_counts.png")),
               "sizes": str(plot_sizes(sizes, modes, out / "sizes.png")),
               "samples": str(plot_samples(thumbs, spec.classes, out / "samples.png"))}
    report = {
        "name": spec.name, "classes": spec.classes, "counts": counts,
        "n": {s: int(sum(c)) for s, c in counts.items()},
        "imbalance_ratio": imbalance_ratio(counts["train"]),
        "sizes": {f"{w}x{h}": n for (w, h), n in Counter(sizes).most_common()},
        "modes": dict(Counter(modes).most_common()),
        "broken": [{"split": name, "path": p, "reason": r} for name, sc in scans.items() for p, r in sc.broken],
        "exact_duplicates": dups["exact"], "near_duplicates": dups["near"], "near_distance": near_distance,
        "exact_counts": count_pairs(dups["exact"]), "near_counts": count_pairs(dups["near"]),
        "notes": list(spec.notes), "figures": figures, "output_dir": str(out),
    }
    (out / "inspect.json").write_text(json.dumps(report, indent=1))
    with open(out / "duplicates.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "distance", "a_split", "a", "a_class", "b_split", "b", "b_class"])
        for kind in ("exact", "near"):
            for p in dups[kind]:
                w.writerow([kind, p["distance"], p["a_split"], *map(spreadsheet_safe, (p["a"], p["a_class"])),
                            p["b_split"], *map(spreadsheet_safe, (p["b"], p["b_class"]))])
    return report


def _pair_lines(pairs: list[dict], limit: int) -> list[str]:
    lines = [f"    {p['a_split']}:{p['a']} = {p['b_split']}:{p['b']}"
             + (f"  (distance {p['distance']})" if p["distance"] else "")
             + ("" if p["same_label"] else f"  LABELS DIFFER: {p['a_class']} vs {p['b_class']}")
             for p in pairs[:limit]]
    if len(pairs) > limit:
        lines.append(f"    ... {len(pairs) - limit} more in duplicates.csv")
    return lines


def format_inspection(r: dict, max_classes: int = 30, examples: int = 10) -> str:
    classes = r["classes"]
    lines = [f"{r['name']}: {len(classes)} classes; images: "
             + " / ".join(f"{s} {n}" for s, n in r["n"].items())]
    lines += [f"note: {n}" for n in r["notes"]]  # skipped folders and symlinks: what the counts leave out
    spread = count_spread(r["counts"]["train"], classes)
    lines.append(f"class counts (train): {spread}; imbalance ratio {r['imbalance_ratio']:.2f}")
    width = min(24, max(8, *(len(str(c)) for c in classes[:max_classes])))
    lines.append(f"  {'class':<{width}} " + " ".join(f"{s:>7}" for s in r["counts"]))
    for i, c in enumerate(classes[:max_classes]):
        lines.append(f"  {str(c)[:width]:<{width}} " + " ".join(f"{r['counts'][s][i]:>7}" for s in r["counts"]))
    if len(classes) > max_classes:
        lines.append(f"  ... {len(classes) - max_classes} more classes in inspect.json")
    sizes = list(r["sizes"].items())
    lines.append("image sizes (WxH): " + ", ".join(f"{s} ({n})" for s, n in sizes[:5])
                 + (f", and {len(sizes) - 5} more" if len(sizes) > 5 else ""))
    lines.append("modes: " + ", ".join(f"{m} ({n})" for m, n in r["modes"].items()))
    lines.append(f"broken files: {len(r['broken'])}")
    lines += [f"    {b['split']}: {b['path']} ({b['reason']})" for b in r["broken"][:examples]]
    for kind, title in (("exact", "exact duplicates (identical bytes or pixels)"),
                        ("near", f"near duplicates (pHash within {r['near_distance']} of 64 bits)")):
        pairs = r[f"{kind}_duplicates"]
        cnt = r[f"{kind}_counts"]
        lines.append(f"{title}: " + (", ".join(f"{n} pair(s) {k}" for k, n in cnt.items()) if pairs else "none"))
        leaks = [p for p in pairs if p["a_split"] != p["b_split"]]
        if leaks:
            lines.append(f"  LEAKAGE: {len(leaks)} pair(s) span splits; the test score overstates the model")
        lines += _pair_lines(leaks or pairs, examples)
    lines.append(f"written to {r['output_dir']}/ (inspect.json, duplicates.csv, class_counts.png, sizes.png, "
                 "samples.png)")
    return "\n".join(lines)
