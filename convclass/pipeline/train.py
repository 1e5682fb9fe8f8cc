"""train → test → report: one training run, its test split scored with best.pt, and its report."""
from __future__ import annotations

from ..training import TrainResult, train

__all__ = ["TrainResult", "train_and_report"]

# TODO: the test and report steps move here from training/fit.py once the training core rewrite has landed
train_and_report = train
