"""Figures of a run drawn from plain data (history rows, metric dicts, labels and probabilities), saved as PNG."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..plotting import label_step, save, short, subplots

__all__ = ["plot_curves", "plot_confusion", "plot_per_class", "plot_prediction_histogram", "plot_reliability",
           "plot_compare_curves"]


def _col(history: list[dict], key: str) -> np.ndarray:
    return np.asarray([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in history])


def _points(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) with y measured: epochs that skipped validation (--val-every) hold NaN, and a line through the
    others beats isolated dots."""
    keep = ~np.isnan(y)
    return x[keep], y[keep]


def plot_curves(history: list[dict], path: str | Path, title: str = "training curves") -> Path:
    """Loss, accuracy and learning rate against epoch, from metrics.csv rows."""
    from matplotlib.ticker import MaxNLocator
    ep = _col(history, "epoch")
    ms = 3 if len(ep) > 10 else 6  # a few epochs are a few dots: make them visible
    fig, axes = subplots(1, 3, figsize=(15, 4), layout="constrained")
    for split, style in (("train", "-o"), ("val", "-s")):
        axes[0].plot(*_points(ep, _col(history, f"{split}_loss")), style, ms=ms, label=split)
        axes[1].plot(*_points(ep, 100 * _col(history, f"{split}_acc")), style, ms=ms, label=split)
    axes[0].set_ylabel("cross-entropy loss")
    axes[1].set_ylabel("accuracy (%)")
    lr = _col(history, "lr")
    axes[2].plot(ep, lr, "-o", ms=ms, color="tab:green")
    axes[2].set_ylabel("learning rate")
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    if np.nanmin(lr) > 0 and np.nanmax(lr) / np.nanmin(lr) > 20:
        axes[2].set_yscale("log")
    elif len(lr) and np.nanmax(lr) == np.nanmin(lr):  # a constant rate: no zoomed axis of 1e-5 ticks
        axes[2].set_ylim(0, 2 * np.nanmax(lr) if np.nanmax(lr) > 0 else 1)
    for ax, t in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_title(t)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if len(ep) and np.nanmax(ep) - np.nanmin(ep) < 4:  # else one epoch spans 0.945-1.05 in 0.015 steps
            lo, hi = int(np.nanmin(ep)), int(np.nanmax(ep))
            ax.set_xticks(range(lo, hi + 1))
            ax.set_xlim(lo - 0.5, hi + 0.5)
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(title)
    return save(fig, path)


def plot_compare_curves(histories: dict[str, list[dict]], path: str | Path) -> Path:
    """Validation accuracy, validation loss and training loss of several runs, overlaid per panel."""
    fig, axes = subplots(1, 3, figsize=(16, 4.5), layout="constrained")
    panels = (("val_acc", "validation accuracy (%)", 100), ("val_loss", "validation loss", 1),
              ("train_loss", "training loss", 1))
    for name, hist in histories.items():
        for ax, (key, _, scale) in zip(axes, panels):
            ax.plot(*_points(_col(hist, "epoch"), scale * _col(hist, key)), "-o", ms=3, label=short(name, 30))
    from matplotlib.ticker import MaxNLocator
    for ax, (_, label, _) in zip(axes, panels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("run comparison")
    return save(fig, path)


def plot_confusion(cm, classes: list[str], path: str | Path, normalize: bool = False) -> Path:
    """Counts or row-normalised; every class labelled up to 150 classes, values written up to 20 classes."""
    cm = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    # ~0.14 inch per class (a 7 pt label) once labels would not fit in a 9 inch square
    side = float(np.clip(0.14 * k, 6.0, 30.0)) if k > 20 else max(4.5, 0.5 * k + 2)
    fig, ax = subplots(figsize=(side + 1.8, side))
    kw = {}
    if not normalize and k > 20 and cm.max() > 0:
        from matplotlib.colors import LogNorm  # with many classes the diagonal dwarfs the mistakes on a linear scale
        shown = np.where(shown > 0, shown, np.nan)
        kw["norm"] = LogNorm(vmin=1, vmax=max(cm.max(), 2))
    elif normalize and k > 20:
        from matplotlib.colors import PowerNorm  # square-root scale: a 5 % confusion is still visible
        kw["norm"] = PowerNorm(0.5, vmin=0, vmax=1)
    else:
        kw.update(vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    im = ax.imshow(shown, cmap="Blues", interpolation="nearest", **kw)
    ax.set_facecolor("white")
    if normalize:
        label = "fraction of the true class" + (" (square-root scale)" if k > 20 else "")
    else:
        label = "images (log scale)" if "norm" in kw else "images"
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=label)
    if "norm" in kw and not normalize:  # plain numbers (1, 2, 5, 10, ...) rather than 10^0, 10^1
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000) if t <= cm.max()]
        cbar.set_ticks(ticks, labels=[str(t) for t in ticks])
        cbar.minorticks_off()
    step = label_step(k)
    fs = 9 if k <= 20 else 7
    ticks = np.arange(0, k, step)
    names = [short(classes[i]) for i in ticks]
    ax.set_xticks(ticks, names, rotation=90, fontsize=fs)
    ax.set_yticks(ticks, names, fontsize=fs)
    if k <= 20:
        thresh = np.nanmax(shown) / 2 if shown.size else 0
        for i in range(k):
            for j in range(k):
                v = cm[i, j] / max(cm[i].sum(), 1) if normalize else cm[i, j]
                if v:
                    ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                            fontsize=8 if k <= 12 else 6, color="white" if v > thresh else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    extra = f", every {step}th class labelled" if step > 1 else ""
    ax.set_title(("confusion matrix, row-normalised (recall on the diagonal)" if normalize
                  else "confusion matrix, counts") + extra)
    return save(fig, path)


def plot_per_class(per_class: list[dict], path: str | Path) -> Path:
    """Precision, recall and F1 per class as horizontal bars; more than 30 classes are sorted worst F1 first."""
    rows = list(per_class)
    k = len(rows)
    if k > 30:
        rows = sorted(rows, key=lambda r: r["f1"])
    h = 0.8 / 3 if k <= 30 else 0.8
    fig, ax = subplots(figsize=(8, max(3.0, (0.42 if k <= 30 else 0.16) * k + 1.2)))
    y = np.arange(k)
    if k <= 30:
        for n, (key, color) in enumerate((("precision", "tab:blue"), ("recall", "tab:orange"), ("f1", "tab:green"))):
            ax.barh(y + (n - 1) * h, [r[key] for r in rows], height=h, color=color, label=key)
    else:  # one bar per class stays readable; precision and recall become markers on it
        ax.barh(y, [r["f1"] for r in rows], height=h, color="tab:green", alpha=0.5, label="F1")
        ax.plot([r["precision"] for r in rows], y, "|", color="tab:blue", ms=6, label="precision")
        ax.plot([r["recall"] for r in rows], y, "x", color="tab:orange", ms=3, label="recall")
    step = label_step(k)
    ax.set_yticks(y[::step], [short(r["class"]) for r in rows][::step], fontsize=9 if k <= 30 else 6)
    ax.set_ylim(-0.7, k - 0.3)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)  # room for markers at exactly 1.0
    ax.set_xlabel("score (0 to 1)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    ax.set_title("per-class precision / recall / F1" + (" (sorted, worst F1 first)" if k > 30 else ""), pad=22)
    return save(fig, path)


def plot_prediction_histogram(y_true, y_pred, classes: list[str], path: str | Path, split: str = "test") -> Path:
    """Images per class: true labels against predictions; a class the model over-predicts shows a taller bar."""
    k = len(classes)
    t = np.bincount(np.asarray(y_true, np.int64), minlength=k)
    p = np.bincount(np.asarray(y_pred, np.int64), minlength=k)
    fig, ax = subplots(figsize=(float(np.clip(0.13 * k + 2, 7, 30)), 4))
    x = np.arange(k)
    ax.bar(x - 0.2, t, width=0.4, label="true", color="tab:gray")
    ax.bar(x + 0.2, p, width=0.4, label="predicted", color="tab:blue")
    step = label_step(k)
    ax.set_xticks(x[::step], [short(c) for c in classes][::step], rotation=90 if k > 10 else 30,
                  ha="center" if k > 10 else "right", fontsize=9 if k <= 30 else 6)
    ax.set_xlim(-0.7, k - 0.3)
    from matplotlib.ticker import MaxNLocator
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # image counts are whole numbers
    ax.set_ylabel("images")
    ax.set_xlabel("class")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.set_title(f"predicted vs true class counts ({split} split)", pad=22)
    return save(fig, path)


def plot_reliability(bins: dict, ece: float, path: str | Path) -> Path:
    """Accuracy per confidence bin against the diagonal, with the images per bin beneath."""
    edges = np.asarray(bins["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    acc = np.asarray(bins["accuracy"], dtype=np.float64)
    conf = np.asarray(bins["confidence"], dtype=np.float64)
    count = np.asarray(bins["count"])
    fig, (ax, ax2) = subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ok = count > 0
    ax.bar(centers[ok], acc[ok], width=width * 0.95, color="tab:blue", edgecolor="black", lw=0.5, label="accuracy")
    ax.plot(centers[ok], conf[ok], "_", color="tab:red", ms=14, mew=2.5, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy in bin (0 to 1)")
    ece_txt = "n/a" if ece is None or (isinstance(ece, float) and math.isnan(ece)) else f"{ece:.3f}"
    ax.set_title(f"reliability diagram, ECE = {ece_txt}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax2.bar(centers, count, width=width * 0.95, color="tab:gray")
    ax2.set_xlabel("top-1 confidence (predicted probability)")
    ax2.set_ylabel("images")
    ax2.set_xlim(0, 1)
    return save(fig, path)
