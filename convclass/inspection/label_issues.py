"""Suspected label errors, outliers, near-duplicates and overlapping classes, found by the cleanlab library from
out-of-sample predicted probabilities (N, K) and model embeddings (N, D); pure functions on arrays.

Every score follows cleanlab's convention: a quality in [0, 1], lower = more likely an issue. "label" rows are
cleanlab.filter.find_label_issues' flags ranked by self-confidence (the probability of the given label); the
suggested label is the most probable class. "outlier" and "near_duplicate" rows are cleanlab Datalab's flags on
the embeddings. Multi-label data ((N, K) 0/1 targets, sigmoid probabilities) goes through cleanlab's multi-label
paths: a label is a set of classes, the suggestion every class at or above its threshold (the fold model's tuned
per-label thresholds when given, else 0.5). Classes of a multi-label set do not exclude each other, so there is no
class-pair overlap: the "overlap" rows are instead common_multilabel_issues' labels most often wrongly given or
wrongly missing.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from ..safeio import spreadsheet_safe

__all__ = ["Issue", "IssueReport", "find_issues", "label_text", "write_issues_csv", "write_overlap_csv",
           "write_retrain_csvs", "KINDS", "OVERLAP_COLUMNS"]

KINDS = ("label", "outlier", "near_duplicate")
MIN_FOR_KNN = 20  # Datalab's neighbour graph (k = 10) means little on fewer images
CLEANLAB_HINT = "label-issues needs cleanlab and datasets: pip install 'convclass[labels]'"
# IssueReport.overlap's keys: class pairs the data confuses, or (multi-label) labels often wrongly given or missing
OVERLAP_COLUMNS = {False: ("class_a", "class_b", "examples", "joint"),
                   True: ("label", "issue", "examples", "probability")}
MULTI_OVERLAP_NOTE = ("multi-label: no class-pair overlap (labels do not exclude each other); listed instead, per "
                      "label, how often cleanlab finds it given but absent or present but not given")


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
    overlap: list[dict]                 # OVERLAP_COLUMNS[multilabel] each, most frequent first
    n: int
    notes: list[str] = field(default_factory=list)
    multilabel: bool = False

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
        return [{"label": str(r["Class Name"]), "issue": "given, likely absent" if r["In Given Label"] else
                 "missing, likely present", "examples": int(r["Num Examples"]),
                 "probability": float(r["Issue Probability"])} for _, r in df.iterrows() if r["Num Examples"] > 0]
    df = _cleanlab()[2](labels=labels, pred_probs=probs, class_names=names)
    return [{"class_a": str(r["Class Name A"]), "class_b": str(r["Class Name B"]),
             "examples": int(r["Num Overlapping Examples"]), "joint": float(r["Joint Probability"])}
            for _, r in df.iterrows() if r["Num Overlapping Examples"] > 0]


def _cuts(thresholds, shape: tuple[int, int]) -> np.ndarray:
    """(N, K) per-image, per-label thresholds from None (0.5), (K,) or (N, K) values in [0, 1]."""
    t = np.asarray(0.5 if thresholds is None else thresholds, dtype=np.float64)
    if t.shape not in ((), (shape[1],), shape) or not (np.isfinite(t).all() and (t >= 0).all() and (t <= 1).all()):
        raise ConvclassError(f"thresholds must be numbers in [0, 1], one per label (or per image and label) for "
                             f"probabilities of shape {shape}, got shape {t.shape}")
    return np.broadcast_to(t, shape)


def find_issues(labels, pred_probs, features=None, classes: list[str] | None = None, thresholds=None
                ) -> IssueReport:
    """labels (N,) class indices or (N, K) 0/1 multi-label rows, pred_probs (N, K) out-of-sample (softmax or
    sigmoid), features (N, D) or None (then no outliers or near-duplicates). thresholds (multi-label only): where
    a label counts as present in the suggested set, (K,) or (N, K) (each image's fold model's), default 0.5.
    Issues sorted by kind, worst first."""
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
        suggested = [tuple(np.flatnonzero(row).tolist()) for row in probs >= _cuts(thresholds, probs.shape)]
        scores = quality(labels, probs)
    else:
        if len(np.unique(y)) < 2:
            raise ConvclassError("label issues need at least 2 classes with images")
        labels, probs = y, probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
        given, suggested = y.tolist(), probs.argmax(1).tolist()
        scores = quality(labels, probs, method="self_confidence")
    # cleanlab's default (prune_by_noise_rate) over-flags when the probabilities are under-confident, as label
    # smoothing makes them: on a CIFAR-10 fold with 10 % flipped labels it flagged 320 of 2,000 for 212 flips
    # (precision 0.52). low_self_confidence flags cleanlab's own estimate of the issue count, the least
    # self-confident first: 209 flagged, precision 0.79, recall 0.78 on the same fold.
    flagged = find_label_issues(labels, probs, filter_by="low_self_confidence")
    # ranked here by the score each row shows: cleanlab's own multi-label ranking fails ("Labels must be in
    # multi-label format") when the flagged rows' labels are all 0 or all 1, e.g. when nothing is flagged
    ranked = np.flatnonzero(flagged)[np.argsort(np.asarray(scores)[flagged], kind="stable")]
    issues = [Issue(int(i), "label", float(scores[i]), given[i], suggested[i]) for i in ranked]
    notes = [MULTI_OVERLAP_NOTE] if multi else []
    if features is not None and len(y) >= MIN_FOR_KNN:
        issues += _embedding_issues(given, np.asarray(features, dtype=np.float32), suggested)
    elif features is not None:
        notes.append(f"outliers and near-duplicates need at least {MIN_FOR_KNN} images; skipped")
    names = list(classes) if classes is not None else [str(c) for c in range(k)]
    return IssueReport(issues=issues, overlap=_overlap(labels, probs, names, multi), n=len(y), notes=notes,
                       multilabel=multi)


def _name(paths: list[str] | None, i: int) -> str:
    return os.path.abspath(paths[i]) if paths else f"#{i}"


def write_issues_csv(report: IssueReport, path: Path, classes: list[str], paths: list[str] | None) -> Path:
    """label_issues.csv: path, given, suggested, score, kind (images without a file are named #INDEX), a report
    for people: names are spreadsheet_safe. (The retrain CSVs are read back by convclass, so they are not.)"""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "given", "suggested", "score", "kind"])
        for i in report.issues:
            cells = (_name(paths, i.index), label_text(classes, i.given), label_text(classes, i.suggested))
            w.writerow([*map(spreadsheet_safe, cells), f"{i.score:.6f}", i.kind])
    return path


def write_overlap_csv(report: IssueReport, path: Path) -> Path:
    """class_overlap.csv: report.overlap's rows under OVERLAP_COLUMNS (probabilities to 6 places)."""
    cols = OVERLAP_COLUMNS[report.multilabel]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([f"{o[c]:.6f}" if isinstance(o[c], float) else spreadsheet_safe(o[c]) for c in cols]
                    for o in report.overlap)
    return path


LEAVE_OUT = ("label",)  # what without_issues.csv leaves out unless told otherwise (--leave-out)


def write_retrain_csvs(report: IssueReport, folder: Path, labels: np.ndarray, classes: list[str],
                       paths: list[str], leave_out: tuple[str, ...] = LEAVE_OUT) -> dict[str, Path]:
    """Two path,label CSVs for `convclass train --data FILE.csv`, the source folder untouched: without_issues.csv
    leaves out the images with an issue of a kind in `leave_out` (label errors by default: an outlier is an
    unusual image, not a wrong one, and Datalab flags a few percent of any set; measured on Fashion-MNIST, 457
    of 10,000 images); relabelled.csv keeps every image, label issues under their
    suggested label. Multi-label sets are written as `a|b` cells (empty: no label). Read them back with the data's
    --task: auto would read multi-label sets that all hold one label as single-label, and class names holding
    , | or ; as label sets."""
    drop = set(report.flagged(leave_out).tolist())
    fix = {i.index: i.suggested for i in report.issues if i.kind == "label"}
    out = {"without_issues": folder / "without_issues.csv", "relabelled": folder / "relabelled.csv"}
    for key, target in out.items():
        with open(target, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "labels" if report.multilabel else "label"])
            for i, y in enumerate(labels):
                if key == "without_issues" and i in drop:
                    continue
                label = fix.get(i, y) if key == "relabelled" else y
                if isinstance(label, np.ndarray):  # a (K,) 0/1 row of multi-label data
                    label = tuple(np.flatnonzero(label).tolist())
                w.writerow([_name(paths, i), label_text(classes, label)])
    return out
