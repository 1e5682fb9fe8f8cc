"""A checkpoint scored on a split, with only the checkpoint's own preprocessing: metrics and their files."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import resolve_checkpoint
from ..data import PreparedData, TensorSplit, prepare_data
from ..data.sources import DataOptions
from ..errors import ConvclassError, printable
from ..inference import load_model
from ..metrics import classification_metrics, multilabel_metrics
from ..progress import Bar, chunks, interactive
from ..safeio import spreadsheet_safe
from .external import class_index, is_training_data, load_external, shown_data, slug
from .multilabel import format_multilabel_report, label_rows, write_label_files
from .plots import plot_confusion_matrix
from .table import PRF, metric_table

__all__ = ["Scored", "eval_batch_size", "evaluate", "format_report", "score_checkpoint"]


@dataclass
class Scored:
    """A checkpoint's predictions on one split, with the metrics and the folder its files went to."""
    metrics: dict
    y: np.ndarray  # (N,) labels in the model's class order; multi-label: (N, K) 0/1 rows
    probs: np.ndarray  # (N, K) class probabilities
    split: TensorSplit
    data: PreparedData
    output_dir: Path
    class_names: list[str] | None = None  # the model's display names, one per class (checks.display_names)


def score_checkpoint(run_or_ckpt: str | Path, data: str | None = None, split: str = "test",
                     output: str | Path | None = None, device: str = "auto", batch_size: int | None = None,
                     data_root: str | None = None, precision: str = "auto", options: DataOptions | None = None
                     ) -> Scored:
    """Score `split` of the data the model was trained with (its settings, so the same held-out split), or every
    image of another labelled set `data` (its own test split if it has one; labels matched to the model's classes
    by name, evaluation/external.py), and write metrics.json, per_class.csv, confusion_matrix.csv and the
    confusion-matrix PNGs into `output` (default RUN/eval-SPLIT, or RUN/eval-<set name> for another set).
    `batch_size`: images per forward pass (default: the run's evaluation batch, see eval_batch_size);
    `options`: how to read another set's CSV or Hugging Face columns (the training data is read as the run read it)."""
    ckpt_path = resolve_checkpoint(run_or_ckpt)
    lm = load_model(ckpt_path, device, precision)
    cfg = lm.config or {}
    data = data or cfg.get("data")
    if not data:
        raise ConvclassError("this checkpoint does not record its dataset; pass --data")
    if split not in ("train", "val", "test"):
        raise ConvclassError(f"--split must be train, val or test, not {split!r}")
    root = data_root or (cfg.get("data_root") if isinstance(cfg.get("data_root"), str) else None) \
        or "~/.cache/convclass"
    external = not is_training_data(data, cfg.get("data"))
    if external:
        pd, scope = load_external(data, split, lm, root, options)
        s = pd.test
    else:
        pd = prepare_data(data, data_root=root, img_size=lm.img_size, channels=lm.channels,
                          val_split=cfg.get("val_split", 0.1), test_split=cfg.get("test_split", 0.2),
                          subset=cfg.get("subset"), seed=cfg.get("seed", 0), resize=lm.preprocess.resize,
                          crop_pct=lm.preprocess.crop_pct,  # decoded as training's evaluation saw them
                          options=DataOptions.from_config(cfg),  # how the run read its CSV
                          cache=cfg.get("cache") if cfg.get("cache") in ("auto", "never") else "always")
        s, scope = getattr(pd, split), f"{split} split of the training data"
    multi = lm.task == "multi"
    if s.y.dim() == 2 and not multi:
        raise ConvclassError(f"{printable(data)} is multi-label (several labels per image) but this model predicts "
                             "one class per image; evaluate a model trained on multi-label data")
    if multi:
        y = label_rows(s.y, pd.classes, lm.classes, data)
    else:
        y = torch.from_numpy(class_index(pd.classes, lm.classes, lm.class_names, shown_data(data)))[s.y].numpy()
    bs = eval_batch_size(lm.config, batch_size)
    with Bar(f"evaluate {split}", interactive()) as bar:
        parts = [lm.predict_proba(s.x[i:i + bs], bs) for i in chunks(len(s), bs, bar)]
    probs = (torch.cat(parts) if parts else torch.zeros(0, 0)).numpy()
    m = multilabel_metrics(y, probs, lm.classes, lm.thresholds) if multi else classification_metrics(y, probs,
                                                                                                     lm.classes)
    m.update(split=split, data=str(data), checkpoint=str(ckpt_path), external=external, scope=scope)
    name = f"eval-{slug(pd.name)}" + (f"-{split}" if split != "test" else "") if external else f"eval-{split}"
    out = Path(output) if output else ckpt_path.parent / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(m, indent=1))
    if multi:
        write_label_files(m, out)
        m["output_dir"] = str(out)
        return Scored(metrics=m, y=y, probs=probs, split=s, data=pd, output_dir=out, class_names=lm.class_names)
    with open(out / "per_class.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["class", "precision", "recall", "f1", "support"])
        w.writeheader()
        w.writerows({**r, "class": spreadsheet_safe(r["class"])} for r in m["per_class"])
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred"] + [spreadsheet_safe(c) for c in lm.classes])
        for c, row in zip(lm.classes, m["confusion_matrix"]):
            w.writerow([spreadsheet_safe(c)] + row)
    plot_confusion_matrix(m["confusion_matrix"], lm.classes, out / "confusion_matrix.png")
    plot_confusion_matrix(m["confusion_matrix"], lm.classes, out / "confusion_matrix_norm.png", normalize=True)
    m["output_dir"] = str(out)
    return Scored(metrics=m, y=y, probs=probs, split=s, data=pd, output_dir=out, class_names=lm.class_names)


def eval_batch_size(config: dict | None, asked: int | None = None) -> int:
    """`asked`, else what the run evaluated with (its --eval-batch-size, else its training chunk, so scoring
    needs no more memory than training had), else 32. The checkpoint's config is not trusted: odd values skipped."""
    if asked is not None:
        if type(asked) is not int or asked < 1:
            raise ConvclassError(f"--batch-size must be a whole number of images, at least 1, not {asked!r}")
        return asked
    cfg = config or {}
    sizes = [cfg.get(k) for k in ("eval_batch_size", "micro_batch", "batch_size")]
    return next((v for v in sizes if type(v) is int and 1 <= v <= 2**20), 32)


def evaluate(run_or_ckpt: str | Path, data: str | None = None, split: str = "test", output: str | Path | None = None,
             device: str = "auto", batch_size: int | None = None, data_root: str | None = None, precision: str = "auto",
             options: DataOptions | None = None) -> dict:
    """Metrics dict for `split` of `data`, with its files written (see score_checkpoint); no report.html (that
    is convclass.evaluate, in the pipeline)."""
    return score_checkpoint(run_or_ckpt, data, split, output, device, batch_size, data_root, precision,
                            options).metrics


def _scored_line(m: dict) -> str:
    """What was scored: every image of another set, or a split of the training data."""
    if m.get("external"):
        return (f"scored {m['n']:,} images of {printable(m['scope'])} (external set; labels mapped to the model's "
                f"{len(m['per_class'])} classes by name)")
    return f"{m.get('scope') or m.get('split', 'test') + ' split'}: {m['n']:,} images"


def format_report(m: dict, max_classes: int = 50) -> str:
    if m.get("task") == "multi":
        return format_multilabel_report(m, max_classes)
    lines = [_scored_line(m),
             f"  accuracy                          {m['accuracy']:.4f}"]
    if "top5_accuracy" in m:
        lines.append(f"  top-5 accuracy                    {m['top5_accuracy']:.4f}")
    for avg in ("macro", "weighted"):
        lines.append(f"  {avg + ' precision / recall / F1':<33} {m[f'precision_{avg}']:.4f} / "
                     f"{m[f'recall_{avg}']:.4f} / {m[f'f1_{avg}']:.4f}")
    lines += metric_table(m["per_class"], "class", PRF + [("support", "support", 8, None)], max_classes,
                          "per_class.csv")
    return "\n".join(lines)
