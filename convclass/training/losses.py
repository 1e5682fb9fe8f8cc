"""The loss a run trains with, chosen by the data's task: softmax cross-entropy for one class per image, sigmoid
binary cross-entropy per label for multi-label rows (data/multilabel.py). Both take --balance loss (class weights;
for BCE the positive weight of each label, negatives/positives, so a rare label's few positives count as much as
its many negatives) and --label-smoothing (for BCE each 0/1 target moves eps/2 toward the other side).
Also what a batch and a split score: the training accuracy and, on validation, the figure best.pt follows."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..metrics import mean_average_precision

__all__ = ["Loss", "MAX_POS_WEIGHT", "batch_hits", "best_score", "loss_function", "loss_weights", "sample_weights",
           "split_scores"]

MAX_POS_WEIGHT = 100.0  # a label on 1 image in 10,000 would otherwise weigh 10,000x and swamp the others

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_function(multilabel: bool, weights: torch.Tensor | None, label_smoothing: float) -> Loss:
    """loss(logits (B, K) fp32, target) -> mean loss; target (B,) class indices, or (B, K) soft/0-1 rows."""
    if not multilabel:
        # F.cross_entropy looked up at each call: tests/test_training.py watches the arguments it gets
        return lambda out, target: F.cross_entropy(out, target, weight=weights, label_smoothing=label_smoothing)

    def bce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float() * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(out, target, pos_weight=weights)
    return bce


def loss_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """--balance loss: (K,) class weights total/(K*count) for class indices; for multi-label rows each label's
    BCE pos_weight, negatives/positives, clipped to [1/MAX_POS_WEIGHT, MAX_POS_WEIGHT]."""
    if y.dim() == 1:
        counts = torch.bincount(y, minlength=num_classes).float()
        return counts.sum() / (num_classes * counts.clamp(min=1))
    pos = (y > 0.5).float().sum(0)
    return ((len(y) - pos) / pos.clamp(min=1)).clamp(1 / MAX_POS_WEIGHT, MAX_POS_WEIGHT)


def sample_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """--balance sampler: (N,) drawing weight of each image, 1/count of its class; of a multi-label row, 1/count of
    its rarest label (an image without labels weighs as the commonest label)."""
    if y.dim() == 1:
        return (1.0 / torch.bincount(y, minlength=num_classes).float().clamp(min=1))[y]
    present = y > 0.5
    counts = present.float().sum(0).clamp(min=1)
    inverse = torch.where(present, 1.0 / counts, torch.zeros_like(y))
    return inverse.max(1).values.where(present.any(1), 1.0 / counts.max())


def batch_hits(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Images of the batch predicted right: the top class, or every label at 0.5 (subset accuracy)."""
    if y.dim() == 1:
        return int((logits.argmax(1) == y).sum())
    return int(((logits > 0) == (y > 0.5)).all(1).sum())


def split_scores(logits: torch.Tensor, y: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """({loss, acc[, map]}, probabilities) of a scored split: softmax, or sigmoid with subset accuracy at 0.5 and
    macro mAP (what best.pt follows for multi-label runs, TrainState.best_val)."""
    if y.dim() == 1:
        loss = F.cross_entropy(logits, y).item()
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean().item()}, logits.softmax(1)
    probs = logits.sigmoid()
    return {"loss": F.binary_cross_entropy_with_logits(logits, y.float()).item(),
            "acc": batch_hits(logits, y) / len(y), "map": mean_average_precision(y.numpy(), probs.numpy())}, probs


def best_score(val: dict) -> float:
    """The validation figure a better epoch raises: macro mAP for multi-label runs, else accuracy."""
    score = val.get("map", val["acc"])
    return val["acc"] if score != score else score  # NaN: no label has a positive in the validation split
