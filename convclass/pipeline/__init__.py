"""The one orchestration layer: it strings the stages together, and nothing below it imports it.

    train_and_report     training (fit) → test (best.pt on the test split) → reporting (figures, report.html)
    evaluate_and_report  evaluation (a checkpoint on a split) → reporting
    cross_validate       K folds, each a train_and_report run on its own split of the pooled data
    launch               `train --nproc N`: the same run under torchrun, restarted from last.pt on failure
"""
from .crossval import CV_METRICS, cross_validate, format_cv
from .evaluate import evaluate_and_report
from .torchrun import Launch, launch, restarted_run
from .train import TrainResult, train_and_report

__all__ = ["CV_METRICS", "Launch", "TrainResult", "cross_validate", "evaluate_and_report", "format_cv", "launch",
           "restarted_run", "train_and_report"]
