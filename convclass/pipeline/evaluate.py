"""evaluate → report: a checkpoint scored on a split, then the same figures and report.html as a training run."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.sources import DataOptions
from ..data.summary import data_summary
from ..evaluation import score_checkpoint
from ..reporting import build_report, save_predictions

__all__ = ["evaluate_and_report"]


def evaluate_and_report(run_or_ckpt: str | Path, data: str | None = None, split: str = "test",
                        output: str | Path | None = None, device: str = "auto", batch_size: int | None = None,
                        data_root: str | None = None, precision: str = "auto", options: DataOptions | None = None
                        ) -> dict:
    """Metrics dict for `split` of the data the model was trained with (its held-out test split by default), or
    for every image of another labelled set `data` (its own test split if it has one; labels matched to the
    model's classes by name; `options`: how to read its CSV or Hugging Face columns); the Python API behind
    `convclass evaluate`. Writes into `output` (default RUN/eval-SPLIT; RUN/eval-<set name> for another set) the
    metric files, data_summary.json, predictions.npz and report.html; m["report"] is the report's path. `batch_size`: images
    per forward pass (default: what the run evaluated with, its training chunk unless --eval-batch-size)."""
    s = score_checkpoint(run_or_ckpt, data, split, output, device, batch_size, data_root, precision, options)
    # reporting/ reads only these files, so the report of a split looks like the report of a training run
    (s.output_dir / "data_summary.json").write_text(json.dumps(data_summary(s.data), indent=1))
    save_predictions(s.output_dir, s.y, s.probs, s.metrics["classes"], s.split.paths, split=split,
                     class_names=s.class_names)
    s.metrics["report"] = str(build_report(s.output_dir, images=s.split.x))
    return s.metrics
