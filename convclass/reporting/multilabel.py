"""report.html of a multi-label run or evaluation: the scores, the per-label table (precision, recall, F1, AP,
support, threshold), precision-recall curves with each label's threshold marked, and the label co-occurrence
matrices (true and predicted), drawn from test_metrics.json / metrics.json and predictions.npz in the folder."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve

from ..errors import ConvclassError
from ..metrics import predict_labels
from ..plotting import save, short, subplots
from .html import CSS, img_tag

__all__ = ["build_multilabel_report"]

MAX_CURVES = 24  # PR panels drawn; the table lists every label
SCORES = [("map", "mAP (macro)"), ("f1_macro", "macro F1"), ("f1_micro", "micro F1"),
          ("subset_accuracy", "subset accuracy"), ("hamming_loss", "Hamming loss")]


def _pr_curves(y: np.ndarray, probs: np.ndarray, m: dict, path: Path) -> Path:
    k = min(len(m["classes"]), MAX_CURVES)
    cols = min(k, 4)
    fig, axes = subplots(-(-k // cols), cols, figsize=(3.2 * cols, 2.8 * -(-k // cols)), squeeze=False)
    for ax in axes.flat[k:]:
        ax.axis("off")
    for j, ax in zip(range(k), axes.flat):
        r = m["per_label"][j]
        if y[:, j].any():
            prec, rec, _ = precision_recall_curve(y[:, j], probs[:, j])
            ax.plot(rec, prec)
            ax.plot(r["recall"], r["precision"], "o", label=f"threshold {r['threshold']:.2f}")
            ax.legend(fontsize=7, loc="lower left")
        ax.set(title=f"{short(r['label'])} (AP {r['ap'] or 0:.2f})", xlim=(0, 1), ylim=(0, 1.02),
               xlabel="recall", ylabel="precision")
    return save(fig, path)


def _cooccurrence(y: np.ndarray, pred: np.ndarray, classes: list[str], path: Path) -> Path:
    fig, axes = subplots(1, 2, figsize=(12, 5.5))
    for ax, rows, what in zip(axes, (y, pred), ("true", "predicted")):
        counts = rows.T.astype(np.int64) @ rows.astype(np.int64)  # (K, K): images holding both labels
        ax.imshow(counts, cmap="Blues")
        ticks = range(len(classes)) if len(classes) <= 30 else []
        ax.set(title=f"{what} label co-occurrence (images)", xticks=list(ticks), yticks=list(ticks))
        if ticks:
            ax.set_xticklabels([short(c, 12) for c in classes], rotation=90, fontsize=7)
            ax.set_yticklabels([short(c, 12) for c in classes], fontsize=7)
    return save(fig, path)


def build_multilabel_report(folder: str | Path) -> Path:
    folder = Path(folder)
    found = [folder / n for n in ("test_metrics.json", "metrics.json") if (folder / n).is_file()]
    if not found:
        raise ConvclassError(f"{folder} has no test_metrics.json or metrics.json; train or evaluate it first")
    m = json.loads(found[0].read_text())
    with np.load(folder / "predictions.npz", allow_pickle=False) as z:  # run_report.save_predictions wrote it
        y, probs = (z["y_true"] > 0.5).astype(np.int64), z["probs"].astype(np.float64)
    figs = folder / "figures"
    figs.mkdir(exist_ok=True)
    pr = _pr_curves(y, probs, m, figs / "pr_curves.png")
    co = _cooccurrence(y, predict_labels(probs, m["thresholds"]), m["classes"], figs / "cooccurrence.png")
    cards = "".join(f'<div class="card"><b>{m[k]:.3f}</b><span>{label}</span></div>' for k, label in SCORES)
    head = "".join(f"<th>{h}</th>" for h in ("label", "precision", "recall", "F1", "AP", "support", "threshold"))
    rows = "".join(
        f'<tr><td class="l">{html.escape(str(r["label"]))}</td><td>{r["precision"]:.3f}</td><td>{r["recall"]:.3f}'
        f'</td><td>{r["f1"]:.3f}</td><td>{"-" if r["ap"] is None else format(r["ap"], ".3f")}</td>'
        f'<td>{r["support"]}</td><td>{r["threshold"]:.3f}</td></tr>' for r in m["per_label"])
    title = f"{folder.name}: multi-label, {m['n']} images"
    body = (f'<div class="cards">{cards}</div><p class="note">A label is predicted at or above its threshold '
            f"(tuned on the validation split for F1).</p><h2>Per label</h2><table><tr>{head}</tr>{rows}</table>"
            f"<h2>Precision-recall curves</h2>{img_tag(pr, 'precision-recall curves')}"
            f"<h2>Label co-occurrence</h2>{img_tag(co, 'label co-occurrence')}")
    out = folder / "report.html"
    out.write_text(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                   f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
                   encoding="utf-8")
    return out
