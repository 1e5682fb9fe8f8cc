"""A run's figures and report.html, rebuilt from files in the run folder (no model, no retraining).

Training and `evaluate` store predictions.npz (y_true, probs, classes, paths) next to their metrics; every
figure here is drawn from it, from metrics.csv and from data_summary.json. The two image grids need pixels:
they are drawn when the caller passes the images, or later from the stored paths when the data came from files.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..checks import display_names
from ..errors import ConvclassError
from ..safeio import Refused, open_regular
from ..metrics import calibration_bins, classification_metrics, expected_calibration_error, most_confused_pairs
from .html import FIGURES, run_name, write_html

__all__ = ["save_predictions", "load_predictions", "draw_figures", "build_report", "read_history", "FIGURES"]


def save_predictions(folder: str | Path, y_true, probs, classes: list[str], paths: list[str] | None = None,
                     split: str = "test", class_names: list[str] | None = None) -> Path:
    """predictions.npz: labels, float16 probabilities and file paths, and the classes' display names when there
    are any (the report shows them); never the images themselves."""
    folder = Path(folder)
    out = folder / "predictions.npz"
    np.savez_compressed(out, y_true=np.asarray(y_true, np.int64), probs=np.asarray(probs, np.float16),
                        classes=np.asarray(classes, dtype=str), split=np.asarray(split),
                        paths=np.asarray(paths if paths is not None else [], dtype=str),
                        **({"class_names": np.asarray(class_names, dtype=str)} if class_names else {}))
    return out


def load_predictions(folder: str | Path) -> dict:
    p = Path(folder) / "predictions.npz"
    if not p.exists():
        raise ConvclassError(f"{folder} has no predictions.npz; train or `convclass evaluate` the run first")
    try:  # any size (the arrays are what they are), but a FIFO or device would hang np.load
        f = open_regular(p, 2**62)
    except Refused as e:
        raise ConvclassError(f"{p}: {e}; evaluate the run again (`convclass evaluate {folder}`)") from None
    with f, np.load(f, allow_pickle=False) as z:
        probs = z["probs"].astype(np.float64)
        if z["y_true"].ndim == 1:  # float16 storage: renormalise (multi-label sigmoid rows do not sum to 1)
            probs /= np.maximum(probs.sum(1, keepdims=True), 1e-12)
        classes = [str(c) for c in z["classes"]]
        names = [str(c) for c in z["class_names"]] if "class_names" in z else None
        return {"y_true": z["y_true"], "probs": probs, "classes": classes,
                "paths": [str(p) for p in z["paths"]] or None, "split": str(z["split"]),
                "class_names": names if names and len(names) == len(classes) else None}


def _find_up(folder: Path, name: str) -> Path | None:
    """`name` in the folder or its parent (an eval-<split>/ folder sits inside the run folder)."""
    for d in (folder, folder.parent):
        if (d / name).exists():
            return d / name
    return None


def read_history(folder: str | Path) -> list[dict]:
    p = _find_up(Path(folder), "metrics.csv")
    if p is None:
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _draw_grids(fig_dir: Path, pred: dict, images) -> None:
    from .grids import confident_indices, images_at, plot_prediction_grid
    y, probs, classes = pred["y_true"], pred["probs"], display_names(pred)
    for correct, name in ((True, "confident_correct.png"), (False, "confident_wrong.png")):
        imgs = images_at(confident_indices(y, probs, correct), images, pred["paths"], len(y))
        if imgs is not None:  # files moved or gone: keep the grid drawn at training time, if any
            plot_prediction_grid(imgs, y, probs, classes, fig_dir / name, correct=correct)


def draw_figures(folder: str | Path, images=None) -> dict:
    """Every figure of FIGURES that the folder's files allow, into folder/figures/; returns the summary dict."""
    from .figures import (plot_confusion, plot_curves, plot_per_class, plot_prediction_histogram,
                          plot_reliability)
    folder = Path(folder)
    fig_dir = folder / "figures"
    fig_dir.mkdir(exist_ok=True)
    history = read_history(folder)
    pred = load_predictions(folder)
    if history:
        plot_curves(history, fig_dir / "curves.png", title=f"training curves: {run_name(folder)}")
    y, probs, classes = pred["y_true"], pred["probs"], display_names(pred)
    m = classification_metrics(y, probs, classes)
    bins = calibration_bins(y, probs)
    ece = expected_calibration_error(y, probs)
    pairs = most_confused_pairs(m["confusion_matrix"], classes, top=20)
    plot_confusion(m["confusion_matrix"], classes, fig_dir / "confusion_counts.png")
    plot_confusion(m["confusion_matrix"], classes, fig_dir / "confusion_normalized.png", normalize=True)
    plot_per_class(m["per_class"], fig_dir / "per_class.png")
    plot_prediction_histogram(y, probs.argmax(1), classes, fig_dir / "pred_hist.png", split=pred["split"])
    plot_reliability(bins, ece, fig_dir / "reliability.png")
    _draw_grids(fig_dir, pred, images)
    calib = {"ece": ece, "bins": bins, "most_confused": pairs}
    (folder / "calibration.json").write_text(json.dumps(calib, indent=1))
    return {"metrics": m, "ece": ece, "most_confused": pairs, "split": pred["split"], "epochs_run": len(history)}


def build_report(run_dir: str | Path, images=None) -> Path:
    """Draw the figures and write report.html in a run (or eval-<split>) folder; returns the report's path."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ConvclassError(f"{folder} is not a folder; pass a run folder such as runs/digits-cnn3")
    if (folder / "predictions.npz").is_file() and load_predictions(folder)["y_true"].ndim == 2:
        from .multilabel import build_multilabel_report  # label rows: a report of its own
        return build_multilabel_report(folder, images)
    summary = draw_figures(folder, images)
    return write_html(folder, summary)
