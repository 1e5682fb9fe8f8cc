"""`convclass cv`: stratified K-fold cross-validation, one ordinary training run per fold.

All labelled images (train, val and test splits as prepared) are pooled, --subset draws its images from that pool
(stratified, seeded) before anything else, and the pool is cut into K stratified folds; fold i
is the test set of run i, and that run's validation split (for the best checkpoint and early stopping) is carved
from the other folds with --val-split. Each fold is a full `train` run in <cv folder>/fold<i>/.

`convclass cv --resume <cv folder>` finishes a cross-validation that was stopped: folds already scored are read
back, a fold stopped mid-way resumes from its last.pt (exactly, as `train --resume`), the rest train. A 5-fold
of 30-epoch CIFAR-10 runs is estimated at over an hour per fold on 2 cores; it need not be one sitting.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..config import SAFE_ON_RESUME, TrainConfig, load_config, resume_overrides, save_config
from ..data.groups import assign_groups, group_split
from ..data.multilabel import is_multilabel, multilabel_folds, stratify_key
from ..data.prepare import PreparedData, TensorSplit, channel_stats, prepare_data, stratified_split
from ..data.sources import DataOptions
from ..data.summary import class_counts
from ..errors import ConvclassError, Interrupted
from ..metrics import expected_calibration_error
from ..models import model_entry
from ..reporting import load_predictions
from ..safeio import read_regular
from ..training import finetune
from ..training.runs import new_run_dir
from .train import train_and_report

__all__ = ["cross_validate", "format_cv", "pooled_data", "read_oof", "CV_METRICS"]

PLAN, CV_CONFIG = "cv_plan.json", "cv_config.yaml"  # written when a cross-validation starts, read by --resume
# what `cv --resume` may change: SAFE_ON_RESUME less what would make the folds train unlike each other
SAFE_ON_CV_RESUME = tuple(k for k in SAFE_ON_RESUME if k not in ("epochs", "patience"))

CV_METRICS = ["accuracy", "top5_accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
              "recall_weighted", "f1_weighted", "ece", "map", "f1_micro", "subset_accuracy", "hamming_loss"]


def _pool(data: PreparedData, subset: int | None, seed: int) -> TensorSplit:
    """Every image of the prepared splits, or a stratified `subset` of them drawn once from all of them: a
    subset is the number of images the whole cross-validation sees, as it is the number `train` trains on."""
    splits = [data.train, data.val, data.test]
    y = torch.cat([s.y for s in splits]).numpy()
    keep = np.arange(len(y))
    if subset and subset < len(y):
        _, keep = stratified_split(y, subset / len(y), seed + 2)
    elif subset and subset > len(y):
        warnings.warn(f"--subset {subset} is more than the {len(y)} images {data.name} has; cross-validating on all "
                      f"{len(y)}", stacklevel=3)
    # only the kept rows are gathered from each (possibly memory-mapped) split: no copy of the whole set
    starts = np.cumsum([0] + [len(s) for s in splits])
    picked = [keep[(keep >= a) & (keep < b)] - a for a, b in zip(starts[:-1], starts[1:])]
    paths = None
    if all(s.paths is not None for s in splits):
        paths = [s.paths[i] for s, idx in zip(splits, picked) for i in idx]
    return TensorSplit(x=torch.cat([s.x[torch.from_numpy(idx)] for s, idx in zip(splits, picked)]),
                       y=torch.from_numpy(y[keep]), paths=paths)


def _take(s: TensorSplit, idx: np.ndarray) -> TensorSplit:
    t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    return TensorSplit(x=s.x[t], y=s.y[t], paths=None if s.paths is None else [s.paths[i] for i in idx])


def fold_indices(y: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Test indices of each fold: every class dealt round-robin over the folds after a seeded shuffle; with
    `groups` (one per image), whole groups dealt so each fold gets about its share of every class; multi-label
    rows by iterative stratification (data/multilabel.py)."""
    if groups is not None:
        if len(np.unique(np.asarray(groups).astype(str))) < folds:
            raise ConvclassError(f"the images form fewer groups than --folds {folds}; use fewer folds or check "
                                 "--group-by / the group column")
        part = assign_groups(stratify_key(y), groups, [1] * folds, seed)
        return [np.flatnonzero(part == k) for k in range(folds)]
    if is_multilabel(y):
        return multilabel_folds(y, folds, seed)
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            out[(j + offset) % folds].append(int(i))
        offset += len(idx)  # the next class starts where this one stopped, so fold sizes stay even
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in out]


def pooled_data(cfg: TrainConfig) -> tuple[PreparedData, TensorSplit]:
    """The prepared data and the pool cross-validation cuts into folds: the same images in the same order for
    the same config (label-issues re-reads a cv run's images through it)."""
    entry = model_entry(cfg.model)
    plan = finetune.input_plan(cfg, entry.default_img_size)
    # TODO: the whole set is decoded (and cached) before the subset is drawn; drawing it from the undecoded
    # file list needs prepare_data to pool before decoding.
    data = prepare_data(cfg.data, data_root=cfg.data_root, val_split=cfg.val_split, test_split=cfg.test_split,
                        seed=cfg.seed, verbose=not cfg.quiet, options=DataOptions.from_config(cfg),
                        **plan.prepare_kwargs())
    return data, _pool(data, cfg.subset, cfg.seed)


def read_oof(cv_dir) -> dict:
    """oof.npz of a cv run: every pooled image's out-of-fold probabilities (N, K) float32, its label y (N,), the
    0-based fold that held it out, the classes and the file paths (None for in-memory data)."""
    with np.load(f"{cv_dir}/oof.npz", allow_pickle=False) as z:
        return {"probs": z["probs"].astype(np.float32), "y": z["y"].astype(np.int64), "fold": z["fold"],
                "classes": [str(c) for c in z["classes"]], "paths": [str(p) for p in z["paths"]] or None}


def cross_validate(config: TrainConfig | None = None, folds: int | None = None, *,
                   pooled: tuple[PreparedData, TensorSplit] | None = None, resume: str | Path | None = None,
                   **overrides) -> dict:
    """Train `folds` runs (default 5) and return {folds: [per-fold metrics], mean, std, output_dir}; writes
    cv.json, cv.csv and oof.npz (read_oof: each image's probabilities from the fold that did not train on it).

    std is the sample standard deviation over folds (ddof=1). Fold runs skip their report.html (a fold's figures
    are rarely read; `convclass report <cv folder>/fold<i>` draws them later). `pooled`: pooled_data(config),
    when the caller already holds it. `resume`: a cv folder to finish with its saved config (cv_config.yaml) and
    folds; of the overrides only SAFE_ON_CV_RESUME may differ from it, and the data must give the same folds.
    """
    plan = None
    if resume is not None:
        cv_dir = Path(resume)
        if config is not None:
            raise ConvclassError(f"--resume {cv_dir} continues with its saved {CV_CONFIG}; drop --config")
        plan = _read_plan(cv_dir)
        if folds is not None and folds != plan["folds"]:
            raise ConvclassError(f"--resume {cv_dir} is a {plan['folds']}-fold cross-validation and cannot change "
                                 f"to --folds {folds}; start a new `convclass cv` for that")
        folds = plan["folds"]
        cfg, notes = resume_overrides(load_config(cv_dir / CV_CONFIG), overrides, cv_dir, SAFE_ON_CV_RESUME,
                                      instead="start a new `convclass cv` with the options you want")
        for note in notes if not cfg.quiet else []:
            print(note, flush=True)
    else:
        cfg, folds = (config or TrainConfig()).update(**overrides), 5 if folds is None else folds
    if folds < 2:
        raise ConvclassError(f"--folds must be at least 2, not {folds}")
    data, pool = pooled or pooled_data(cfg)
    y = pool.y.numpy()
    every = len(data.train) + len(data.val) + len(data.test)
    if not cfg.quiet:
        drawn = f" (--subset {cfg.subset}: stratified, of {every})" if len(y) < every else ""
        print(f"cross-validation on {len(y)} images in total{drawn}", flush=True)
    counts = np.asarray(class_counts(y, len(data.classes)))  # images of each class (holding each label)
    if counts.min() < folds:
        small = data.classes[int(counts.argmin())]
        raise ConvclassError(f"class {small!r} has only {counts.min()} image(s), fewer than --folds {folds}; "
                             "use fewer folds")
    groups = None  # with groups, folds and each fold's val split take whole groups; an image without one is its own
    if data.groups is not None and pool.paths is not None:
        groups = np.asarray([data.groups.get(p, "\0" + p) for p in pool.paths], dtype=object)
    test_folds = fold_indices(y, folds, cfg.seed, groups)
    fingerprint = _fingerprint(y, pool.paths, test_folds)
    if plan is None:
        cv_dir = new_run_dir(cfg.runs_dir, cfg.name or f"{data.name}-{cfg.model}-cv")  # --name X: runs/X, as train
        save_config(cfg, cv_dir / CV_CONFIG)
        (cv_dir / PLAN).write_text(json.dumps({"folds": folds, "n": int(len(y)), "fingerprint": fingerprint}))
        if not cfg.quiet:
            print(f"cross-validation folder: {cv_dir} (if it stops: convclass cv --resume {cv_dir})", flush=True)
    elif plan["fingerprint"] != fingerprint:
        raise ConvclassError(f"--resume {cv_dir}: {cfg.data} no longer gives the folds this cross-validation "
                             f"started with (its images, labels or their paths changed); start a new `convclass "
                             f"cv`")
    fold_over = None if plan is None else {k: v for k, v in overrides.items()
                                           if k in SAFE_ON_CV_RESUME and k != "report" and v is not None}
    rows = []
    oof, held_by = np.zeros((len(y), len(data.classes)), np.float32), np.zeros(len(y), np.int64)
    for i, test_idx in enumerate(test_folds):
        rest = np.setdiff1d(np.arange(len(y)), test_idx)
        if groups is not None:
            keep, held = group_split(y[rest], groups[rest], cfg.val_split, cfg.seed + 1 + i)
        else:
            keep, held = stratified_split(y[rest], cfg.val_split, cfg.seed + 1 + i)
        train_s, val_s, test_s = _take(pool, rest[keep]), _take(pool, rest[held]), _take(pool, test_idx)
        mean, std = channel_stats(train_s.x)
        fold_data = PreparedData(name=data.name, classes=data.classes, train=train_s, val=val_s, test=test_s,
                                 img_size=data.img_size, channels=data.channels, mean=mean, std=std,
                                 notes=[f"cross-validation fold {i + 1}/{folds}"])
        print(f"fold {i + 1}/{folds}: train {len(train_s)} / val {len(val_s)} / test {len(test_s)} images",
              flush=True)
        try:
            res = _train_fold(cfg, cv_dir / f"fold{i + 1}", fold_data, fold_over)
        except KeyboardInterrupt:  # a fold's own `train --resume` would finish that fold, not the cross-validation
            raise Interrupted(f"convclass cv --resume {cv_dir}", str(cv_dir)) from None
        m = res.test_metrics
        pred = load_predictions(res.run_dir)
        oof[test_idx], held_by[test_idx] = pred["probs"], i
        row = {"fold": i + 1, **{k: m[k] for k in CV_METRICS if k in m},
               **({} if is_multilabel(y) else {"ece": expected_calibration_error(pred["y_true"], pred["probs"])}),
               "best_epoch": m.get("checkpoint_epoch"), "n_test": m["n"], "run_dir": str(res.run_dir)}
        rows.append(row)
        first = f"mAP {row['map']:.4f}" if "map" in row else f"accuracy {row['accuracy']:.4f}"
        print(f"fold {i + 1}/{folds}: {first}  macro F1 {row['f1_macro']:.4f}", flush=True)
    keys = [k for k in CV_METRICS if all(k in r for r in rows)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    std = {k: float(np.std([r[k] for r in rows], ddof=1)) for k in keys}
    result = {"folds": rows, "mean": mean, "std": std, "k": folds, "metrics": keys, "output_dir": str(cv_dir),
              "config": cfg.to_dict(), "data": data.name, "n": int(len(y))}
    (cv_dir / "cv.json").write_text(json.dumps(result, indent=1))
    np.savez_compressed(cv_dir / "oof.npz", probs=oof, y=y, fold=held_by, classes=np.asarray(data.classes),
                        paths=np.asarray(pool.paths or [], dtype=str))
    with open(cv_dir / "cv.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fold"] + keys + ["best_epoch", "n_test"])
        for r in rows:
            w.writerow([r["fold"]] + [f"{r[k]:.6f}" for k in keys] + [r["best_epoch"], r["n_test"]])
        w.writerow(["mean"] + [f"{mean[k]:.6f}" for k in keys] + ["", ""])
        w.writerow(["std"] + [f"{std[k]:.6f}" for k in keys] + ["", ""])
    return result


def _fingerprint(y: np.ndarray, paths: list[str] | None, test_folds: list[np.ndarray]) -> str:
    """What must not change between a cross-validation's start and its --resume: the pooled images' labels and
    paths in order, and the folds cut from them (a fold resumed on other images would mix two experiments)."""
    h = hashlib.sha256(np.ascontiguousarray(y).tobytes())
    h.update("\0".join(paths or []).encode("utf-8", "surrogateescape"))
    for f in test_folds:
        h.update(b"|" + np.asarray(f, dtype=np.int64).tobytes())
    return h.hexdigest()


def _read_plan(cv_dir: Path) -> dict:
    """cv_plan.json of a cv folder (read bounded: the folder may come from anywhere), checked for its fields."""
    if not (cv_dir / CV_CONFIG).is_file() or not (cv_dir / PLAN).is_file():
        raise ConvclassError(f"--resume {cv_dir}: not a folder `convclass cv` started (no {PLAN} and {CV_CONFIG}); "
                             "pass the folder a cross-validation printed, or start a new one")
    try:
        plan = json.loads(read_regular(cv_dir / PLAN, 1 << 16))
    except (OSError, ValueError) as e:
        raise ConvclassError(f"--resume {cv_dir}: {PLAN} is not readable ({e}); start a new `convclass cv`") from None
    if not (isinstance(plan, dict) and isinstance(plan.get("folds"), int) and isinstance(plan.get("fingerprint"), str)):
        raise ConvclassError(f"--resume {cv_dir}: {PLAN} is not a cross-validation plan; start a new `convclass cv`")
    return plan


def _train_fold(cfg: TrainConfig, fold_dir: Path, fold_data: PreparedData, resumed: dict | None):
    """One fold's train_and_report: a new run in fold_dir, or (resumed is the options given to --resume) the run
    already there continued from its last.pt, or read back if it was scored."""
    if resumed is not None and (fold_dir / "config.yaml").is_file():
        if not (fold_dir / "predictions.npz").is_file():
            # stopped between writing test_metrics.json and predictions.npz: score best.pt again for both
            (fold_dir / "test_metrics.json").unlink(missing_ok=True)
        elif (fold_dir / "test_metrics.json").is_file():
            # scored: read back quietly (train's "to train it further: train --resume" is not advice for a fold)
            if not cfg.quiet:
                print(f"{fold_dir.name}: scored before; read back from {fold_dir}", flush=True)
            return train_and_report(resume=fold_dir, prepared=fold_data, **{**resumed, "quiet": True})
        return train_and_report(resume=fold_dir, prepared=fold_data, **resumed)
    if resumed is not None and fold_dir.exists():
        try:  # made by a run stopped before it wrote its config.yaml: nothing in it to keep
            fold_dir.rmdir()
        except OSError:
            raise ConvclassError(f"{fold_dir} is in the way: not a run folder (no config.yaml) and not empty; move "
                                 "it elsewhere and resume again") from None
    return train_and_report(cfg.update(runs_dir=str(fold_dir.parent), name=fold_dir.name, report=False),
                            prepared=fold_data)


def format_cv(r: dict) -> str:
    keys = r["metrics"]
    width = max(len(k) for k in keys)
    lines = [f"{r['k']}-fold cross-validation of {r['config']['model']} on {r['data']} ({r['n']} images)",
             "  " + "fold".ljust(width) + "".join(f"{f['fold']:>9}" for f in r["folds"])
             + "      mean ± std (sample, ddof=1)"]
    for k in keys:
        vals = "".join(f"{f[k]:>9.4f}" for f in r["folds"])
        sd = r["std"][k]
        lines.append(f"  {k:<{width}}{vals}   {r['mean'][k]:.4f} ± {sd if not math.isnan(sd) else 0:.4f}")
    lines.append(f"written to {r['output_dir']}/cv.json and cv.csv")
    return "\n".join(lines)
