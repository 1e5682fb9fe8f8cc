"""`convclass label-issues`: cross-validation's out-of-fold probabilities and the fold models' embeddings handed to
cleanlab (inspection/label_issues.py), written out as label_issues.csv, label_issues.html and two CSVs to train
again on (the source folder is never touched).

Each fold model embeds every pooled image (the input of its final linear layer, L2-normalised) and the K
embeddings are concatenated: one space for all images, in which each image was held out by exactly one model.
Fold models' spaces differ, so one fold's vectors are never compared with another's. On multi-label data each
image's suggested label set is cut at the per-label thresholds its own fold model tuned on validation.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from .. import checks
from ..config import TrainConfig
from ..data.prepare import PreparedData, TensorSplit
from ..errors import ConvclassError, Interrupted, printable
from ..inference import predict_logits
from ..inspection.issues_page import write_issues_page
from ..inspection.label_issues import KINDS, LEAVE_OUT, IssueReport, find_issues, write_issues_csv, \
    write_overlap_csv, write_retrain_csvs
from ..metrics.multilabel import checked_task
from ..models import model_from_checkpoint
from ..safeio import Refused, read_regular
from ..training import finetune
from ..training.recipes import with_recipe
from .crossval import cross_validate, pooled_data, read_oof

__all__ = ["find_label_issues", "format_label_issues", "embed"]

MAX_CV_JSON = 4 << 20  # bytes: a cv.json holds a config and one row per fold


def _kinds(leave_out: tuple[str, ...] | str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in (leave_out.split(",") if isinstance(leave_out, str) else leave_out))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConvclassError(f"--leave-out {printable(','.join(kinds))}: name issue kinds from {', '.join(KINDS)} "
                             "(comma-separated, e.g. label,outlier)")
    return kinds


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


@torch.no_grad()
def embed(run_dir: Path, data: PreparedData, x: torch.Tensor, device: torch.device,
          batch_size: int = 256) -> tuple[np.ndarray, dict]:
    """(N, D) float32: the input of the final linear layer of run_dir's best.pt for uint8 images x (N, C, H, W);
    and the checkpoint as loaded."""
    model, pre, _, ckpt = model_from_checkpoint(run_dir / "best.pt", device)
    store: list[torch.Tensor] = []
    hook = model.classifier_layer().register_forward_hook(
        lambda _m, inp, _out: store.append(inp[0].detach().float().flatten(1).cpu()))
    try:
        predict_logits(finetune.input_view(model, data), x, pre.mean, pre.std, device, batch_size)
    finally:
        hook.remove()
    return (torch.cat(store).numpy() if store else np.zeros((0, 0), np.float32)), ckpt


def _fold_outputs(run_dirs: list[Path], data: PreparedData, pool: TensorSplit, cfg: TrainConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The fold models' concatenated embeddings (N, sum of D) and their multi-label thresholds (folds, K), 0.5
    where a fold has none (single-label data)."""
    parts, cuts = [], []
    for run in run_dirs:
        f, ckpt = embed(run, data, pool.x, _device(cfg), cfg.eval_batch_size or 256)
        parts.append(f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12))
        try:  # a threshold decides every suggested label set: a file from outside is checked
            cuts.append(checked_task(ckpt.get("task"), ckpt.get("thresholds"), len(data.classes))[1] or 0.5)
        except checks.Invalid as e:
            raise checks.refusal(e, run / "best.pt", "checkpoint", "run label-issues with --folds instead") from None
    return np.concatenate(parts, axis=1), np.asarray(np.broadcast_arrays(*cuts) if cuts else [], np.float64)


def _from_cv(cv_dir: Path) -> tuple[TrainConfig, list[Path]]:
    """The config and fold run folders of an earlier `convclass cv` run, checked."""
    try:
        cv = json.loads(read_regular(cv_dir / "cv.json", MAX_CV_JSON))
    except (Refused, OSError, ValueError) as e:
        raise ConvclassError(f"--from-cv {cv_dir}: no readable cv.json ({e}); pass a folder `convclass cv` made") \
            from None
    if not (cv_dir / "oof.npz").is_file():
        raise ConvclassError(f"--from-cv {cv_dir} has no oof.npz (made by an older convclass); run label-issues "
                             "with --folds instead")
    if not isinstance(cv, dict) or not isinstance(cv.get("config"), dict) or not isinstance(cv.get("folds"), list):
        raise ConvclassError(f"--from-cv {cv_dir}: cv.json is not a cross-validation summary")
    saved = {k: v for k, v in cv["config"].items() if k != "git_commit"}
    cfg = TrainConfig().update(**saved)
    return cfg, [cv_dir / f"fold{i + 1}" for i in range(len(cv["folds"]))]


def find_label_issues(config: TrainConfig | None = None, folds: int = 5, *, from_cv: str | Path | None = None,
                      leave_out: tuple[str, ...] | str = LEAVE_OUT, **overrides) -> dict:
    """Cross-validate (or read the cv run `from_cv`), rank label issues, outliers, near-duplicates and class
    overlap with cleanlab, and write label_issues.csv, label_issues.html, class_overlap.csv and, when the images
    are files, without_issues.csv (less the images with an issue of a kind in `leave_out`: "label",
    "outlier", "near_duplicate", or a comma-separated string of them) and relabelled.csv into the cv folder.
    Returns the paths and the IssueReport."""
    leave_out = _kinds(leave_out)
    if from_cv is not None:
        cv_dir = Path(from_cv).expanduser()
        cfg, run_dirs = _from_cv(cv_dir)
        cfg = cfg.update(quiet=(config or TrainConfig()).update(**overrides).quiet)
        data, pool = pooled_data(cfg)
    else:
        cfg = with_recipe(config or TrainConfig(), overrides)  # as `train` does: a named recipe, then the rest
        data, pool = pooled_data(cfg)
        try:
            cv_dir = Path(cross_validate(cfg, folds, pooled=(data, pool))["output_dir"])
        except Interrupted as e:  # the folds go on with cv --resume; label-issues then reads them
            raise Interrupted(f"{e.resume}, then convclass label-issues --from-cv {e.folder}", e.folder) from None
        run_dirs = [cv_dir / f"fold{i + 1}" for i in range(folds)]
    try:
        oof = read_oof(cv_dir)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # a damaged or hand-made oof.npz
        raise ConvclassError(f"{cv_dir}/oof.npz is not readable ({type(e).__name__}); run label-issues with "
                             "--folds instead") from None
    y = pool.y.numpy().astype(np.int64)  # multi-label: (N, K) 0/1 rows
    if len(oof["y"]) != len(y) or not np.array_equal(oof["y"], y) or oof["classes"] != list(data.classes):
        raise ConvclassError(f"the images of {cfg.data} are not the ones {cv_dir} cross-validated (changed since?); "
                             "run label-issues with --folds instead")
    if not cfg.quiet:
        print(f"embedding {len(y)} images with {len(run_dirs)} fold models", flush=True)
    fold = oof["fold"]  # which fold model held each image out; indexes that model's thresholds
    if fold.shape != (len(y),) or fold.dtype.kind not in "iu" or not 0 <= fold.min() <= fold.max() < len(run_dirs):
        raise ConvclassError(f"{cv_dir}/oof.npz names folds that {cv_dir}/cv.json does not; run label-issues with "
                             "--folds instead")
    features, cuts = _fold_outputs(run_dirs, data, pool, cfg)
    report = find_issues(y, oof["probs"], features, data.classes, thresholds=cuts[fold] if y.ndim == 2 else None)
    names = [str(p) for p in pool.paths] if pool.paths else [f"#{i}" for i in range(len(y))]
    out = {"csv": write_issues_csv(report, cv_dir / "label_issues.csv", data.classes, pool.paths),
           "overlap": write_overlap_csv(report, cv_dir / "class_overlap.csv")}
    summary = (f"{len(y)} images of {data.name}, out-of-fold probabilities from {len(run_dirs)}-fold "
               f"cross-validation of {cfg.model}; " + ", ".join(f"{v} {k}" for k, v in report.counts().items()))
    out["html"] = write_issues_page(report, cv_dir / "label_issues.html", pool.x, data.classes, names, summary)
    if pool.paths:
        out.update(write_retrain_csvs(report, cv_dir, y, data.classes, pool.paths, leave_out))
    else:
        report.notes.append(f"{data.name} is not a set of files: no CSV to train again on")
    return {"report": report, "paths": out, "output_dir": str(cv_dir), "summary": summary, "leave_out": leave_out,
            "left_out": len(report.flagged(leave_out))}


def format_label_issues(r: dict) -> str:
    rep: IssueReport = r["report"]
    lines = [printable(r["summary"])]
    if rep.multilabel:
        lines += [f"  label {printable(o['label'])}: {o['issue']} in {o['examples']} image(s)"
                  for o in rep.overlap[:5]]
    else:
        lines += [f"  overlap: {printable(o['class_a'])} / {printable(o['class_b'])}: {o['examples']} images"
                  for o in rep.overlap[:5]]
    lines += [f"note: {n}" for n in rep.notes]
    lines += [f"{k}: {p}" for k, p in r["paths"].items()]
    if "without_issues" in r["paths"]:
        kept = [k for k in ("outlier", "near_duplicate") if k not in r["leave_out"] and rep.counts()[k]]
        lines.append(f"without_issues.csv leaves out {r['left_out']} image(s) ({', '.join(r['leave_out'])})"
                     + (f"; {' and '.join(kept)} images stay in: review them in label_issues.html, or add "
                        f"them with --leave-out {','.join(r['leave_out'] + tuple(kept))}" if kept else ""))
        task = "multi" if rep.multilabel else "single"  # a class name holding , | or ; would read as a label set
        lines.append(f"train again without them: convclass train --data {r['paths']['without_issues']} --task {task} "
                     "...")
    return "\n".join(lines)
