# TODO: remove once training/fit.py imports convclass.metrics (the training core is being rewritten in parallel)
from ..metrics import classification_metrics, confusion_matrix, topk_accuracy  # noqa: F401
