"""report.html of a multi-label run or evaluation: the scores, the per-label table (precision, recall, F1, AP,
support, threshold, ECE), precision-recall curves with each label's threshold marked, the label co-occurrence
matrices (true and predicted), reliability diagrams of the worst-calibrated labels, and the most confident false
positives and negatives of the labels with the most errors, drawn from test_metrics.json / metrics.json and
predictions.npz in the folder (the images from the caller, else from the stored paths)."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve

from ..errors import ConvclassError
from ..metrics import label_calibration, label_errors, predict_labels
from ..plotting import plot_mosaic, save, short, subplots
from .grids import images_at
from .html import CSS, img_tag

__all__ = ["build_multilabel_report"]

MAX_CURVES = 24  # PR panels drawn; the table lists every label
MAX_RELIABILITY = 8  # reliability panels: the labels with the largest ECE
ERROR_LABELS, ERROR_IMAGES = 4, 8  # error grids: labels with the most errors, images per row
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


def _reliability(cal: list[dict], classes: list[str], path: Path) -> Path:
    """Small multiples: per label, the share of positives in each probability bin against the diagonal."""
    worst = sorted((k for k in range(len(cal)) if cal[k]["ece"] == cal[k]["ece"]), key=lambda k: -cal[k]["ece"])
    worst = worst[:MAX_RELIABILITY] or [0]
    cols = min(len(worst), 4)
    fig, axes = subplots(-(-len(worst) // cols), cols, figsize=(3 * cols, 2.9 * -(-len(worst) // cols)),
                         squeeze=False, layout="constrained")
    for ax in axes.flat[len(worst):]:
        ax.axis("off")
    for k, ax in zip(worst, axes.flat):
        b = cal[k]["bins"]
        edges = np.asarray(b["edges"])
        ok = np.asarray(b["count"]) > 0
        centers = ((edges[:-1] + edges[1:]) / 2)[ok]
        ax.bar(centers, np.asarray(b["accuracy"])[ok], width=(edges[1] - edges[0]) * .9, color="tab:blue",
               edgecolor="black", lw=0.5)
        ax.plot(centers, np.asarray(b["confidence"])[ok], "_", color="tab:red", ms=10, mew=2)  # where the bar belongs
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(title=f"{short(classes[k])} (ECE {cal[k]['ece']:.3f})", xlim=(0, 1), ylim=(0, 1),
               xlabel="predicted probability", ylabel="share with the label")
    return save(fig, path)


def _error_grid(y: np.ndarray, probs: np.ndarray, m: dict, images, paths, path: Path) -> str:
    """HTML: rows of the most confident false positives and false negatives of the labels with the most errors,
    each image captioned with the label's probability and the labels it truly holds; or a note why there are none."""
    pred = predict_labels(probs, m["thresholds"])
    errors = (pred != y).sum(0)
    worst = [int(k) for k in np.argsort(-errors, kind="stable")[:ERROR_LABELS] if errors[k]]
    picked = [(k, what, idx) for k in worst
              for what, idx in zip(("false +", "false -"), label_errors(y, probs, m["thresholds"], k, ERROR_IMAGES))]
    rows = [(k, what, idx) for k, what, idx in picked if len(idx)]
    if not rows:
        return '<p class="note">No label is wrong on any image of this split.</p>'
    imgs = images_at(np.concatenate([idx for *_, idx in rows]), images, paths, len(y))
    if imgs is None:
        return ('<p class="note">The images are not at hand (their files moved or the data was not read from files), '
                "so no error grid is drawn.</p>")
    classes = m["classes"]
    truth = ["|".join(short(classes[j], 8) for j in np.flatnonzero(row)) or "(none)" for row in y]
    grid = plot_mosaic([[imgs[int(i)] for i in idx] for *_, idx in rows], path,
                       "most confident errors per label",
                       captions=[[f"p = {probs[i, k]:.2f}\ntrue: {short(truth[i], 16)}" for i in idx]
                                 for k, _, idx in rows],
                       row_labels=[f"{short(classes[k], 12)}: {what}" for k, what, _ in rows],
                       colors=[["darkred"] * len(idx) for *_, idx in rows], side=72, caption_lines=2)
    return img_tag(grid, "most confident errors per label")


def build_multilabel_report(folder: str | Path, images=None) -> Path:
    """report.html in a multi-label run or evaluation folder; `images`: the scored split's images, in the order
    of predictions.npz (else they are read from its paths, when the files are still there)."""
    folder = Path(folder)
    found = [folder / n for n in ("test_metrics.json", "metrics.json") if (folder / n).is_file()]
    if not found:
        raise ConvclassError(f"{folder} has no test_metrics.json or metrics.json; train or evaluate it first")
    m = json.loads(found[0].read_text())
    with np.load(folder / "predictions.npz", allow_pickle=False) as z:  # run_report.save_predictions wrote it
        y, probs = (z["y_true"] > 0.5).astype(np.int64), z["probs"].astype(np.float64)
        paths = [str(p) for p in z["paths"]] if "paths" in z else []
    figs = folder / "figures"
    figs.mkdir(exist_ok=True)
    pr = _pr_curves(y, probs, m, figs / "pr_curves.png")
    co = _cooccurrence(y, predict_labels(probs, m["thresholds"]), m["classes"], figs / "cooccurrence.png")
    cal = label_calibration(y, probs)
    rel = _reliability(cal, m["classes"], figs / "label_reliability.png")
    errors = _error_grid(y, probs, m, images, paths, figs / "label_errors.png")
    cards = "".join(f'<div class="card"><b>{m[k]:.3f}</b><span>{label}</span></div>' for k, label in SCORES)
    head = "".join(f"<th>{h}</th>" for h in ("label", "precision", "recall", "F1", "AP", "support", "threshold",
                                             "ECE"))
    rows = "".join(
        f'<tr><td class="l">{html.escape(str(r["label"]))}</td><td>{r["precision"]:.3f}</td><td>{r["recall"]:.3f}'
        f'</td><td>{r["f1"]:.3f}</td><td>{"-" if r["ap"] is None else format(r["ap"], ".3f")}</td>'
        f'<td>{r["support"]}</td><td>{r["threshold"]:.3f}</td><td>{c["ece"]:.3f}</td></tr>'
        for r, c in zip(m["per_label"], cal))
    title = f"{folder.name}: multi-label, {m['n']} images"
    body = (f'<div class="cards">{cards}</div><p class="note">A label is predicted at or above its threshold '
            f"(tuned on the validation split for F1).</p><h2>Per label</h2><table><tr>{head}</tr>{rows}</table>"
            f'<p class="note">ECE: expected calibration error of the label\'s probability (10 bins; 0 when the '
            f"share of images with the label matches the probability in every bin).</p>"
            f"<h2>Precision-recall curves</h2>{img_tag(pr, 'precision-recall curves')}"
            f"<h2>Label co-occurrence</h2>{img_tag(co, 'label co-occurrence')}"
            f"<h2>Calibration per label</h2>{img_tag(rel, 'reliability per label')}"
            f'<p class="note">Bars: share of images holding the label among those whose probability falls in the '
            f"bin; red marks: their mean probability; at most the {MAX_RELIABILITY} labels with the largest ECE."
            f'</p><h2>Largest errors per label</h2>{errors}<p class="note">For the {ERROR_LABELS} labels with the '
            f"most errors: the images without the label that scored it highest (false +) and those with it that "
            f"scored it lowest (false -); p is the label's probability, true the labels the image holds.</p>")
    out = folder / "report.html"
    out.write_text(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                   f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
                   encoding="utf-8")
    return out
