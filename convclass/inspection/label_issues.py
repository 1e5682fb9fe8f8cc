"""Suspected label errors, outliers, near-duplicates and overlapping classes, found by the cleanlab library from
out-of-sample predicted probabilities (N, K) and model embeddings (N, D); pure functions on arrays.

Every score follows cleanlab's convention: a quality in [0, 1], lower = more likely an issue. "label" rows are
cleanlab.filter.find_label_issues' flags ranked by self-confidence (the probability of the given label); the
suggested label is the most probable class. "outlier" and "near_duplicate" rows are cleanlab Datalab's flags on
the embeddings. Multi-label data ((N, K) 0/1 targets, sigmoid probabilities) goes through cleanlab's multi-label
paths: a label is a set of classes, the suggestion every class at probability >= 0.5, and the "overlap" rows are
common_multilabel_issues' classes most often missing from or wrongly in the given sets.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConvclassError

__all__ = ["Issue", "IssueReport", "find_issues", "label_text", "write_issues_csv", "write_retrain_csvs", "KINDS"]

KINDS = ("label", "outlier", "near_duplicate")
MIN_FOR_KNN = 20  # Datalab's neighbour graph (k = 10) means little on fewer images
CLEANLAB_HINT = "label-issues needs cleanlab and datasets: pip install 'convclass[labels]'"


@dataclass
class Issue:
    index: int        # position in the checked images
    kind: str         # one of KINDS
    score: float      # cleanlab's quality, 0..1, lower = worse
    given: int | tuple[int, ...]       # a class index, or a multi-label set
    suggested: int | tuple[int, ...]
    partner: int | None = None  # a near-duplicate's nearest twin


@dataclass
class IssueReport:
    issues: list[Issue]
    overlap: list[dict]                 # class pairs the data confuses, most overlapping first
    n: int
    notes: list[str] = field(default_factory=list)

    def flagged(self, kinds=("label", "outlier")) -> np.ndarray:
        """Sorted indices of the images with an issue of one of `kinds`."""
        return np.unique(np.asarray([i.index for i in self.issues if i.kind in kinds], dtype=np.int64))

    def counts(self) -> dict[str, int]:
        return {k: sum(i.kind == k for i in self.issues) for k in KINDS}


def label_text(classes: list[str], label) -> str:
    """A class name, or a multi-label set as names joined by | (what the CSV reader splits multi-label cells on)."""
    return "|".join(classes[i] for i in label) if isinstance(label, tuple) else classes[label]


def _cleanlab():
    try:
        from cleanlab.dataset import find_overlapping_classes
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise ConvclassError(CLEANLAB_HINT) from None
    return find_label_issues, get_label_quality_scores, find_overlapping_classes


def _embedding_issues(labels: list, features: np.ndarray, suggested: list) -> list[Issue]:
    try:
        from cleanlab import Datalab
    except ImportError:
        raise ConvclassError(CLEANLAB_HINT) from None
    lab = Datalab({"index": np.arange(len(features))}, verbosity=0)  # these two issue kinds need no labels
    lab.find_issues(features=features, issue_types={"outlier": {}, "near_duplicate": {}})
    table = lab.get_issues()
    twins = lab.get_info("near_duplicate").get("near_duplicate_sets")
    out = []
    for kind in ("outlier", "near_duplicate"):
        hit = np.flatnonzero(table[f"is_{kind}_issue"].to_numpy())
        scores = table[f"{kind}_score"].to_numpy()
        for i in hit[np.argsort(scores[hit], kind="stable")]:
            partner = None
            if kind == "near_duplicate" and twins is not None and len(twins[i]):
                partner = int(twins[i][0])
            out.append(Issue(int(i), kind, float(scores[i]), labels[i], suggested[i], partner))
    return out


def _overlap(labels, probs, names: list[str], multi: bool) -> list[dict]:
    if multi:
        from cleanlab.multilabel_classification.dataset import common_multilabel_issues
        df = common_multilabel_issues(labels=labels, pred_probs=probs, class_names=names)
        return [{"class_a": str(r["Class Name"]),
                 "class_b": "(given, not seen)" if r["In Given Label"] else "(seen, not given)",
                 "examples": int(r["Num Examples"]), "joint": float(r["Issue Probability"])}
                for _, r in df.iterrows() if r["Num Examples"] > 0]
    df = _cleanlab()[2](labels=labels, pred_probs=probs, class_names=names)
    return [{"class_a": str(r["Class Name A"]), "class_b": str(r["Class Name B"]),
             "examples": int(r["Num Overlapping Examples"]), "joint": float(r["Joint Probability"])}
            for _, r in df.iterrows() if r["Num Overlapping Examples"] > 0]


def find_issues(labels, pred_probs, features=None, classes: list[str] | None = None) -> IssueReport:
    """labels (N,) class indices or (N, K) 0/1 multi-label rows, pred_probs (N, K) out-of-sample (softmax or
    sigmoid), features (N, D) or None (then no outliers or near-duplicates). Issues sorted by kind, worst first."""
    y = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(pred_probs, dtype=np.float64)
    multi = y.ndim == 2
    if probs.ndim != 2 or len(probs) != len(y) or not len(y) or (multi and y.shape != probs.shape):
        raise ConvclassError(f"need one row of class probabilities per label, got {probs.shape} for {y.shape}")
    k = probs.shape[1]
    if multi and not np.isin(y, (0, 1)).all() or not multi and (y.min() < 0 or y.max() >= k):
        raise ConvclassError(f"labels must be class indices 0..{k - 1} or 0/1 rows of {k}")
    find_label_issues, quality, _ = _cleanlab()
    if multi:
        from cleanlab.multilabel_classification import get_label_quality_scores as quality
        from cleanlab.multilabel_classification.filter import find_label_issues
        labels = [np.flatnonzero(row).tolist() for row in y]  # cleanlab's multi-label form: lists of classes
        given = [tuple(c) for c in labels]
        suggested = [tuple(np.flatnonzero(p >= 0.5).tolist()) for p in probs]
        scores = quality(labels, probs)
    else:
        if len(np.unique(y)) < 2:
            raise ConvclassError("label issues need at least 2 classes with images")
        labels, probs = y, probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
        given, suggested = y.tolist(), probs.argmax(1).tolist()
        scores = quality(labels, probs, method="self_confidence")
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    issues = [Issue(int(i), "label", float(scores[i]), given[i], suggested[i]) for i in ranked]
    notes = []
    if features is not None and len(y) >= MIN_FOR_KNN:
        issues += _embedding_issues(given, np.asarray(features, dtype=np.float32), suggested)
    elif features is not None:
        notes.append(f"outliers and near-duplicates need at least {MIN_FOR_KNN} images; skipped")
    names = list(classes) if classes is not None else [str(c) for c in range(k)]
    return IssueReport(issues=issues, overlap=_overlap(labels, probs, names, multi), n=len(y), notes=notes)


def _name(paths: list[str] | None, i: int) -> str:
    return os.path.abspath(paths[i]) if paths else f"#{i}"


def write_issues_csv(report: IssueReport, path: Path, classes: list[str], paths: list[str] | None) -> Path:
    """label_issues.csv: path, given, suggested, score, kind (images without a file are named #INDEX)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "given", "suggested", "score", "kind"])
        for i in report.issues:
            w.writerow([_name(paths, i.index), label_text(classes, i.given), label_text(classes, i.suggested),
                        f"{i.score:.6f}", i.kind])
    return path


def write_retrain_csvs(report: IssueReport, folder: Path, labels: np.ndarray, classes: list[str],
                       paths: list[str]) -> dict[str, Path]:
    """Two path,label CSVs for `convclass train --data FILE.csv`, the source folder untouched: without_issues.csv
    leaves out every label issue and outlier; relabelled.csv keeps every image, label issues under their
    suggested label."""
    drop = set(report.flagged().tolist())
    fix = {i.index: i.suggested for i in report.issues if i.kind == "label"}
    out = {"without_issues": folder / "without_issues.csv", "relabelled": folder / "relabelled.csv"}
    for key, target in out.items():
        with open(target, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            for i, y in enumerate(labels):
                if key == "without_issues" and i in drop:
                    continue
                label = fix.get(i, y) if key == "relabelled" else y
                if isinstance(label, np.ndarray):  # a (K,) 0/1 row of multi-label data
                    label = tuple(np.flatnonzero(label).tolist())
                w.writerow([_name(paths, i), label_text(classes, label)])
    return out
