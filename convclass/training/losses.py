"""The loss a run trains with, chosen by the data's task: softmax cross-entropy for one class per image, sigmoid
binary cross-entropy per label for multi-label rows (data/multilabel.py). Both take --balance loss (class weights;
for BCE the positive weight of each label, negatives/positives, so a rare label's few positives count as much as
its many negatives) and --label-smoothing (for BCE each 0/1 target moves eps/2 toward the other side).
Multi-label runs may take the asymmetric loss instead (--loss asl), which down-weights the many easy negatives.
Also what a batch and a split score: the training accuracy and, on validation, the figure best.pt follows."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import ConvclassError
from ..metrics import mean_average_precision

__all__ = ["LOSSES", "Loss", "MAX_POS_WEIGHT", "asl_settings", "asymmetric_loss", "batch_hits", "best_score",
           "loss_function", "loss_weights", "sample_weights", "split_scores"]

LOSSES = {"auto": "cross-entropy, or binary cross-entropy per label for multi-label data",
          "asl": "asymmetric loss (multi-label only)"}  # config.LossName's choices

MAX_POS_WEIGHT = 100.0  # a label on 1 image in 10,000 would otherwise weigh 10,000x and swamp the others

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_function(multilabel: bool, weights: torch.Tensor | None, label_smoothing: float,
                  asl: tuple[float, float, float] | None = None) -> Loss:
    """loss(logits (B, K) fp32, target) -> mean loss; target (B,) class indices, or (B, K) soft/0-1 rows.
    asl: (gamma_neg, gamma_pos, clip) of the asymmetric loss for label rows (asl_settings), None for BCE."""
    if not multilabel:
        # F.cross_entropy looked up at each call: tests/test_training.py watches the arguments it gets
        return lambda out, target: F.cross_entropy(out, target, weight=weights, label_smoothing=label_smoothing)

    def bce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float() * (1 - label_smoothing) + label_smoothing / 2
        if asl is not None:
            return asymmetric_loss(out, target, *asl, pos_weight=weights)
        return F.binary_cross_entropy_with_logits(out, target, pos_weight=weights)
    return bce


def asl_settings(cfg, task: str) -> tuple[float, float, float] | None:
    """(gamma_neg, gamma_pos, clip) when the run trains with --loss asl, else None. The data's task is known only
    once it is read (--task auto), so a single-label run is refused here, before the first step."""
    if cfg.loss != "asl":
        return None
    if task != "multi":
        raise ConvclassError("--loss asl is for multi-label data (several labels per image) and this data has one "
                             "class per image; drop --loss asl, or pass --task multi for a CSV of label sets")
    return cfg.asl_gamma_neg, cfg.asl_gamma_pos, cfg.asl_clip


def asymmetric_loss(out: torch.Tensor, target: torch.Tensor, gamma_neg: float, gamma_pos: float, clip: float,
                    pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """ASL (Ridnik et al. 2021, arXiv:2009.14119) of logits (B, K) against soft/0-1 rows (B, K), averaged over the
    B*K elements like BCE, so learning rates carry over (the paper sums). Per element, with p = sigmoid(out) and
    the shifted probability p_m = max(p - clip, 0) of a negative:
        -[ y (1-p)^gamma_pos log(p) + (1-y) p_m^gamma_neg log(1-p_m) ]
    An easy negative (small p) weighs almost nothing, and one below `clip` nothing at all, so the many negatives
    of each image stop swamping its few positives. gamma 0 and clip 0 give BCE exactly."""
    p = out.sigmoid()
    pos = target * F.logsigmoid(out)  # log p without the log(0) of a saturated sigmoid
    if gamma_pos:
        pos = pos * (1 - p).pow(gamma_pos)
    if pos_weight is not None:
        pos = pos * pos_weight
    if clip:
        p_neg = (p - clip).clamp(min=0)
        log_neg = torch.log1p(-p_neg)  # 1 - p_neg >= clip > 0
    else:
        p_neg, log_neg = p, F.logsigmoid(-out)
    neg = (1 - target) * log_neg
    if gamma_neg:
        neg = neg * p_neg.pow(gamma_neg)
    return -(pos + neg).mean()


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
