"""Evaluation: pure metric functions, the evaluate() entry point and the figures drawn from its results."""
from .evaluate import evaluate, format_report
from .metrics import classification_metrics, confusion_matrix, topk_accuracy

__all__ = ["classification_metrics", "confusion_matrix", "evaluate", "format_report", "topk_accuracy"]
