"""Multi-label metrics as pure functions of 0/1 label rows (N, K) and sigmoid probabilities (N, K), scikit-learn's
implementations underneath; every result is a plain dict or array.

A label absent from y_true (no positive image in the split) has no average precision and is left out of the macro
averages, as classification_metrics leaves out an absent class; micro averages pool every label.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import checks
from .calibration import calibration_bins, expected_calibration_error

__all__ = ["DEFAULT_THRESHOLD", "checked_task", "label_calibration", "label_errors", "labels_above",
           "mean_average_precision", "multilabel_metrics", "predict_labels", "tune_thresholds"]

DEFAULT_THRESHOLD = 0.5


def _arrays(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    y = (np.asarray(y_true, dtype=np.float64) > 0.5).astype(np.int64)  # soft (smoothed, mixed) rows count as 0/1
    return y, np.asarray(probs, dtype=np.float64).reshape(y.shape)


def predict_labels(probs, thresholds=None) -> np.ndarray:
    """(N, K) 0/1: each label whose probability reaches its threshold (0.5 when none are given)."""
    t = DEFAULT_THRESHOLD if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    return (np.asarray(probs) >= t).astype(np.int64)


def labels_above(probs, classes: list[str], thresholds) -> list[list[tuple[str, float]]]:
    """Per row, every (label, probability) at or above the label's threshold, most probable first."""
    keep = predict_labels(probs, thresholds)
    return [sorted(((classes[k], float(p[k])) for k in np.flatnonzero(row)), key=lambda lp: -lp[1])
            for p, row in zip(np.asarray(probs, dtype=np.float64), keep)]


def checked_task(task, thresholds, num_classes: int) -> tuple[str, list[float] | None]:
    """(task, thresholds) as a checkpoint or an export recorded them, checked (files are untrusted; a threshold
    decides every answer): ("single", None) when absent, as in files from before multi-label; a multi-label file
    without thresholds gets 0.5 for each label. Raises checks.Invalid."""
    if task is None or task == "single":
        return "single", None
    checks.need(task == "multi", "task", task, "single or multi")
    if thresholds is None:
        return "multi", [DEFAULT_THRESHOLD] * num_classes
    checks.need(isinstance(thresholds, (list, tuple)) and len(thresholds) == num_classes
                and all(checks.is_num(t) and 0 <= t <= 1 for t in thresholds), "thresholds", thresholds,
                f"{num_classes} numbers from 0 to 1 (one per label)")
    return "multi", [float(t) for t in thresholds]


def _average_precisions(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(K,) average precision of each label, NaN for a label without positives."""
    from sklearn.metrics import average_precision_score  # scikit-learn costs ~2 s to import: not on every start
    return np.array([average_precision_score(y[:, k], p[:, k]) if y[:, k].any() else np.nan
                     for k in range(y.shape[1])])


def mean_average_precision(y_true, probs) -> float:
    """Macro mAP over the labels present in y_true; NaN when none is (the best-checkpoint score of multi-label runs)."""
    y, p = _arrays(y_true, probs)
    ap = _average_precisions(y, p) if len(y) else np.array([np.nan])
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def tune_thresholds(y_true, probs) -> np.ndarray:
    """(K,) per-label thresholds that maximise that label's F1 on these rows (the validation split). The cut is
    placed halfway between the lowest score kept and the next one below, not on a training score itself, so an
    unseen image scoring a hair lower is not dropped. A label without positives keeps 0.5."""
    from sklearn.metrics import precision_recall_curve
    y, p = _arrays(y_true, probs)
    out = np.full(y.shape[1], DEFAULT_THRESHOLD)
    for k in range(y.shape[1]):
        if not y[:, k].any():
            continue
        prec, rec, thr = precision_recall_curve(y[:, k], p[:, k])
        f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(prec), where=prec + rec > 0)[:-1]
        cut = thr[int(np.argmax(f1))]
        below = p[:, k][p[:, k] < cut]
        out[k] = (cut + below.max()) / 2 if len(below) else cut
    return np.clip(out, 1e-6, 1 - 1e-6)


def multilabel_metrics(y_true, probs, classes: list[str], thresholds=None) -> dict:
    """Per-label precision, recall, F1, average precision and support at the given thresholds (0.5 when None);
    their macro (present labels) and micro averages, mAP, subset accuracy and Hamming loss."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import average_precision_score, hamming_loss, precision_recall_fscore_support
    y, p = _arrays(y_true, probs)
    t = np.full(len(classes), DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds, np.float64)
    pred = predict_labels(p, t)
    nan = float("nan")
    with warnings.catch_warnings():  # a label never predicted has precision 0 here (zero_division), said once
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        prec, rec, f1, support = precision_recall_fscore_support(y, pred, average=None, zero_division=0) \
            if len(y) else (np.zeros(len(classes)),) * 4
        micro = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)[:3] if len(y) else \
            (nan,) * 3
    ap = _average_precisions(y, p) if len(y) else np.full(len(classes), np.nan)
    present = np.asarray(support) > 0

    def macro(v) -> float:
        return float(np.mean(np.asarray(v)[present])) if present.any() else nan
    return {
        "task": "multi", "n": int(len(y)),
        "map": float(np.nanmean(ap)) if np.isfinite(ap).any() else nan,
        "micro_ap": float(average_precision_score(y, p, average="micro")) if y.any() else nan,
        "subset_accuracy": float((pred == y).all(1).mean()) if len(y) else nan,
        "hamming_loss": float(hamming_loss(y, pred)) if len(y) else nan,
        "precision_macro": macro(prec), "recall_macro": macro(rec), "f1_macro": macro(f1),
        "precision_micro": float(micro[0]), "recall_micro": float(micro[1]), "f1_micro": float(micro[2]),
        "per_label": [{"label": c, "precision": float(prec[k]), "recall": float(rec[k]), "f1": float(f1[k]),
                       "ap": None if np.isnan(ap[k]) else float(ap[k]), "support": int(support[k]),
                       "threshold": float(t[k])} for k, c in enumerate(classes)],
        "classes": list(classes), "thresholds": [float(v) for v in t],
    }


def label_calibration(y_true, probs, n_bins: int = 10) -> list[dict]:
    """Per label, how far its sigmoid probability is from the share of positives: {bins, ece} with calibration.py's
    bins of p on [0, 1] ("confidence": mean p, "accuracy": share of positives in the bin) and their ECE.
    calibration.py scores a top-1 class; with p as the only column that confidence is p itself, and a row is
    "correct" (class 0) exactly when 1 - y is 0, a positive."""
    y, p = _arrays(y_true, probs)
    return [{"bins": calibration_bins(1 - y[:, k], p[:, k:k + 1], n_bins),
             "ece": expected_calibration_error(1 - y[:, k], p[:, k:k + 1], n_bins)} for k in range(y.shape[1])]


def label_errors(y_true, probs, thresholds, k: int, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of label k at its threshold, at most n row indices each, the most
    confident first: the highest probabilities of images without the label, the lowest of images with it."""
    y, p = _arrays(y_true, probs)
    pred = predict_labels(p[:, k], np.asarray(thresholds, dtype=np.float64)[k])
    fp, fn = np.flatnonzero((pred == 1) & (y[:, k] == 0)), np.flatnonzero((pred == 0) & (y[:, k] == 1))
    return fp[np.argsort(-p[fp, k], kind="stable")][:n], fn[np.argsort(p[fn, k], kind="stable")][:n]
