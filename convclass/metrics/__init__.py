"""Metrics as pure functions of labels and probabilities (numpy in, plain dicts and floats out).

They sit below every stage: evaluation, reporting, the training run's test step and cross-validation all
score with these, so a number means the same thing wherever it is printed.
"""
from .calibration import calibration_bins, expected_calibration_error
from .classification import classification_metrics, confusion_matrix, topk_accuracy
from .confusion import most_confused_pairs
from .multilabel import (label_calibration, label_errors, mean_average_precision, multilabel_metrics, predict_labels,
                         tune_thresholds)

__all__ = ["calibration_bins", "classification_metrics", "confusion_matrix", "expected_calibration_error",
           "label_calibration", "label_errors", "mean_average_precision", "most_confused_pairs", "multilabel_metrics",
           "predict_labels", "topk_accuracy", "tune_thresholds"]
