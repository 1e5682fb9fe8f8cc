"""Evaluating a multi-label checkpoint: label rows in the model's order, per_label.csv and the console report.
The metrics themselves are metrics/multilabel.py, at the thresholds the checkpoint stores."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ..errors import ConvclassError, printable
from ..safeio import spreadsheet_safe
from .table import PRF, metric_table

__all__ = ["LABEL_COLUMNS", "format_multilabel_report", "label_rows", "write_label_files"]

LABEL_COLUMNS = ["label", "precision", "recall", "f1", "ap", "support", "threshold"]


def label_rows(y: torch.Tensor, data_classes: list[str], model_classes: list[str], data: str) -> np.ndarray:
    """(N, K) 0/1 rows in the model's label order from the data's labels (rows, or one class per image), matched
    by name; a label the model does not know is a one-line error, a model label the data lacks has no positives."""
    rows = y.numpy() if y.dim() == 2 else np.eye(len(data_classes), dtype=np.float32)[y.numpy()]
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise ConvclassError(f"{printable(data)} has label(s) {', '.join(map(printable, unknown[:5]))} the model "
                             f"does not predict (its labels: {', '.join(map(printable, model_classes[:10]))})")
    out = np.zeros((len(rows), len(model_classes)), np.float32)
    for j, c in enumerate(data_classes):
        out[:, model_classes.index(c)] = rows[:, j]
    return out


def write_label_files(m: dict, out: Path) -> None:
    with open(out / "per_label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        w.writeheader()
        w.writerows({**r, "label": spreadsheet_safe(r["label"])} for r in m["per_label"])


def format_multilabel_report(m: dict, max_labels: int = 50) -> str:
    lines = [f"{m.get('scope') or m.get('split', 'test') + ' split'}: {m['n']:,} images, {len(m['classes'])} labels",
             f"  mAP (macro)         {m['map']:.4f}",
             f"  subset accuracy     {m['subset_accuracy']:.4f}",
             f"  Hamming loss        {m['hamming_loss']:.4f}"]
    for avg in ("macro", "micro"):
        lines.append(f"  precision/recall/F1 ({avg}) {m[f'precision_{avg}']:.4f} / {m[f'recall_{avg}']:.4f} / "
                     f"{m[f'f1_{avg}']:.4f}")
    columns = PRF + [("ap", "AP", 7, 4), ("support", "support", 8, None), ("threshold", "threshold", 10, 3)]
    lines += metric_table(m["per_label"], "label", columns, max_labels, "per_label.csv")
    return "\n".join(lines)
