"""train → test → report: a training run, its best.pt scored on the test split, and the run's report."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..checkpoint import DiskFull, save_checkpoint
from ..config import TrainConfig
from ..data import PreparedData
from ..data.summary import data_summary
from ..metrics import classification_metrics
from ..models import model_from_checkpoint
from ..progress import Bar, interactive
from ..reporting import build_report, save_predictions
from ..training import Hook, TrainResult, TrainState, train, validate
from ..training.core import call
from ..training.runs import disk_full
from .multilabel import score_multilabel

__all__ = ["TrainResult", "score_best", "train_and_report"]


def train_and_report(config: TrainConfig | None = None, *, resume: str | Path | None = None,
                     callbacks: list | None = None, hooks: list[Hook] | None = None,
                     prepared: PreparedData | None = None, **overrides) -> TrainResult:
    """Train a model, score its best.pt on the test split and write the run's report; the Python API behind
    `convclass train` (convclass.train). Arguments as convclass.training.train; test_metrics is {} on DDP
    ranks other than 0, and a complete run resumed returns its saved scores without training or scoring again."""
    res = train(config, resume=resume, callbacks=callbacks, hooks=hooks, prepared=prepared, **overrides)
    if res.test_metrics is None:
        try:
            res.test_metrics = score_best(res.state)
        except (OSError, DiskFull) as e:
            if full := disk_full(e, res.run_dir):
                raise full from None
            raise
        res.state = None  # the model, optimizer and data are not the caller's to keep
    return res


def score_best(state: TrainState) -> dict:
    """Score best.pt on the test split: test_metrics.json, the test figures stored in best.pt, predictions.npz
    and data_summary.json, then report.html when the config asks for it. Returns the test metrics."""
    run_dir, data, cfg, log = state.run_dir, state.data, state.cfg, state.log
    model, _, _, best = model_from_checkpoint(run_dir / "best.pt", state.device)  # the one way to rebuild
    with Bar("test", interactive(cfg.quiet)) as bar:
        _, probs = validate(model, data.test, data, state.device, state.eval_batch_size, tta=cfg.tta,
                            precision=state.precision, progress=bar)
    # test_metrics.json, the test figures in best.pt (and a multi-label run's thresholds), the log line
    m = score_multilabel(state, model, best, probs) if data.task == "multi" else _score_classes(state, best, probs)
    (run_dir / "data_summary.json").write_text(json.dumps(data_summary(data), indent=1))
    save_predictions(run_dir, data.test.y.numpy(), probs.numpy(), data.classes, data.test.paths,
                     class_names=data.class_names)
    if cfg.report:
        try:
            log(f"report: {build_report(run_dir, images=data.test.x)}")
        except Exception as e:  # the run and its checkpoints are already saved; a figure must not lose them
            warnings.warn(f"could not write the report ({type(e).__name__}: {e}); rebuild it with "
                          f"`convclass report {run_dir}`")
    call(state.hooks, "on_test_end", state, m)  # trackers log the test scores, figures and report
    return m


def _score_classes(state: TrainState, best: dict, probs) -> dict:
    """One class per image: accuracy, F1 and the rest (classification_metrics) of best.pt's test probabilities."""
    run_dir, data, cfg = state.run_dir, state.data, state.cfg
    m = classification_metrics(data.test.y.numpy(), probs.numpy(), data.classes)
    m["checkpoint_epoch"] = best["epoch"] + 1
    m["tta"] = cfg.tta
    (run_dir / "test_metrics.json").write_text(json.dumps(m, indent=1))
    best["metrics"] = {**best["metrics"], "test_acc": m["accuracy"], "test_f1_macro": m["f1_macro"],
                       "test_n": m["n"]}
    save_checkpoint({k: v for k, v in best.items() if k != "format"}, run_dir / "best.pt")
    top5 = f"  top-5 {m['top5_accuracy']:.2%}" if "top5_accuracy" in m else ""
    state.log(f"test accuracy {m['accuracy']:.2%}{top5}  macro F1 {m['f1_macro']:.4f}  ({m['n']} images, "
              f"best epoch {m['checkpoint_epoch']})")
    return m
