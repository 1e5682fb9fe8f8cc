"""Calibration as pure functions of labels and probabilities: reliability bins and expected calibration error."""
from __future__ import annotations

import numpy as np

__all__ = ["calibration_bins", "expected_calibration_error"]


def calibration_bins(y_true, probs, n_bins: int = 15) -> dict:
    """Top-1 confidence binned into `n_bins` equal-width bins on [0, 1].

    Returns {edges (n_bins+1,), count, confidence (mean top-1 probability), accuracy (fraction correct)} per bin;
    empty bins have count 0 and NaN confidence/accuracy (so a plot can leave them out).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = np.zeros(n_bins, dtype=np.int64)
    conf = np.full(n_bins, np.nan)
    acc = np.full(n_bins, np.nan)
    if len(y_true):
        top = probs.max(1)
        correct = (probs.argmax(1) == y_true).astype(np.float64)
        # right-closed bins, (a, b]; a confidence of exactly 0 goes to the first bin
        idx = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, n_bins - 1)
        count = np.bincount(idx, minlength=n_bins)
        filled = count > 0
        conf[filled] = np.bincount(idx, weights=top, minlength=n_bins)[filled] / count[filled]
        acc[filled] = np.bincount(idx, weights=correct, minlength=n_bins)[filled] / count[filled]
    return {"edges": edges.tolist(), "count": count.tolist(), "confidence": conf.tolist(), "accuracy": acc.tolist()}


def expected_calibration_error(y_true, probs, n_bins: int = 15) -> float:
    """ECE: sum over bins of (fraction of images in the bin) x |accuracy - mean confidence|; 0 is perfect."""
    b = calibration_bins(y_true, probs, n_bins)
    count = np.asarray(b["count"], dtype=np.float64)
    n = count.sum()
    if n == 0:
        return float("nan")
    gap = np.abs(np.nan_to_num(np.asarray(b["accuracy"])) - np.nan_to_num(np.asarray(b["confidence"])))
    return float((count / n * gap).sum())
