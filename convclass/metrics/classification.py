"""Classification metrics as pure functions of labels and probabilities; every result is a plain dict."""
from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "classification_metrics", "topk_accuracy"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def topk_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(1).mean()) if len(top) else float("nan")


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(y_true, probs, classes: list[str]) -> dict:
    """Accuracy, top-5, macro/weighted precision, recall, F1, the per-class report and the confusion matrix.

    Classes absent from y_true get support 0 and are left out of the macro averages (as scikit-learn does
    with `labels=` the present ones), so a split without some class is not penalised for it.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    y_pred = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = support > 0
    weights = support / max(support.sum(), 1)
    out = {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "precision_macro": float(precision[present].mean()) if present.any() else float("nan"),
        "recall_macro": float(recall[present].mean()) if present.any() else float("nan"),
        "f1_macro": float(f1[present].mean()) if present.any() else float("nan"),
        "precision_weighted": float((precision * weights).sum()),
        "recall_weighted": float((recall * weights).sum()),
        "f1_weighted": float((f1 * weights).sum()),
        "per_class": [
            {"class": c, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(support[i])}
            for i, c in enumerate(classes)
        ],
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
    if k >= 5:
        out["top5_accuracy"] = topk_accuracy(y_true, probs, 5)
    return out
