"""Suspected label errors, outliers, near-duplicates and overlapping classes, found by the cleanlab library from
out-of-sample predicted probabilities (N, K) and model embeddings (N, D); pure functions on arrays.

Every score follows cleanlab's convention: a quality in [0, 1], lower = more likely an issue. "label" rows are
cleanlab.filter.find_label_issues' flags ranked by self-confidence (the probability of the given label); the
suggested label is the most probable class. "outlier" and "near_duplicate" rows are cleanlab Datalab's flags on
the embeddings.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConvclassError

__all__ = ["Issue", "IssueReport", "find_issues", "write_issues_csv", "write_retrain_csvs", "KINDS"]

KINDS = ("label", "outlier", "near_duplicate")
MIN_FOR_KNN = 20  # Datalab's neighbour graph (k = 10) means little on fewer images
CLEANLAB_HINT = "label-issues needs cleanlab and datasets: pip install 'convclass[labels]'"


@dataclass
class Issue:
    index: int        # position in the checked images
    kind: str         # one of KINDS
    score: float      # cleanlab's quality, 0..1, lower = worse
    given: int
    suggested: int
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


def _cleanlab():
    try:
        from cleanlab.dataset import find_overlapping_classes
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise ConvclassError(CLEANLAB_HINT) from None
    return find_label_issues, get_label_quality_scores, find_overlapping_classes


def _embedding_issues(labels: np.ndarray, features: np.ndarray, suggested: np.ndarray) -> list[Issue]:
    try:
        from cleanlab import Datalab
    except ImportError:
        raise ConvclassError(CLEANLAB_HINT) from None
    lab = Datalab({"label": labels}, label_name="label", verbosity=0)
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
            out.append(Issue(int(i), kind, float(scores[i]), int(labels[i]), int(suggested[i]), partner))
    return out


def find_issues(labels, pred_probs, features=None, classes: list[str] | None = None) -> IssueReport:
    """labels (N,) int, pred_probs (N, K) out-of-sample, features (N, D) or None (then no outliers or
    near-duplicates). Issues sorted by kind, then worst first."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels) or not len(labels):
        raise ConvclassError(f"need one row of class probabilities per label, got {probs.shape} for {labels.shape}")
    k = probs.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise ConvclassError(f"labels must be class indices 0..{k - 1}")
    probs = probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
    find_label_issues, quality, overlapping = _cleanlab()
    notes = []
    present = np.unique(labels)
    if len(present) < 2:
        raise ConvclassError("label issues need at least 2 classes with images")
    suggested = probs.argmax(1)
    scores = quality(labels, probs, method="self_confidence")
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    issues = [Issue(int(i), "label", float(scores[i]), int(labels[i]), int(suggested[i])) for i in ranked]
    if features is not None and len(labels) >= MIN_FOR_KNN:
        feats = np.asarray(features, dtype=np.float32)
        issues += _embedding_issues(labels, feats, suggested)
    elif features is not None:
        notes.append(f"outliers and near-duplicates need at least {MIN_FOR_KNN} images; skipped")
    names = list(classes) if classes is not None else [str(c) for c in range(k)]
    df = overlapping(labels=labels, pred_probs=probs, class_names=names)
    overlap = [{"class_a": str(r["Class Name A"]), "class_b": str(r["Class Name B"]),
                "examples": int(r["Num Overlapping Examples"]), "joint": float(r["Joint Probability"])}
               for _, r in df.iterrows() if r["Num Overlapping Examples"] > 0]
    return IssueReport(issues=issues, overlap=overlap, n=len(labels), notes=notes)


def _name(paths: list[str] | None, i: int) -> str:
    return os.path.abspath(paths[i]) if paths else f"#{i}"


def write_issues_csv(report: IssueReport, path: Path, classes: list[str], paths: list[str] | None) -> Path:
    """label_issues.csv: path, given, suggested, score, kind (images without a file are named #INDEX)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "given", "suggested", "score", "kind"])
        for i in report.issues:
            w.writerow([_name(paths, i.index), classes[i.given], classes[i.suggested], f"{i.score:.6f}", i.kind])
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
                w.writerow([_name(paths, i), classes[fix.get(i, y) if key == "relabelled" else y]])
    return out
