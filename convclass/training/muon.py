"""airbench94_muon's optimizer (KellerJordan/cifar10-airbench, `airbench94_muon.py`: 94 % on CIFAR-10 in 8 epochs
where SGD needs 9.9): Muon for convolution filters, Nesterov SGD for everything else, in one torch Optimizer so
schedules, checkpoints and resume work as for any other.

Muon (Jordan et al. 2024) replaces a filter's momentum update by its nearest semi-orthogonal matrix (a few
Newton-Schulz iterations): every direction of the filter bank moves by the same amount. Filters followed by
BatchNorm are scale-free, so each is also renormalised to norm sqrt(out_channels) before its step, as airbench
does. Learning rates follow airbench94_muon at its batch of 2000 on a summed loss, converted to convclass's mean
loss and scaled linearly with the batch size.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["MuonSGD", "muon_param_groups", "newton_schulz"]

AIRBENCH_BATCH = 2000
# airbench94_muon, per summed-loss step at batch 2000, relative to Muon's 0.24: BatchNorm shifts and the
# whitening bias 0.053, the linear head 0.67; decoupled weight decay 2e-6 per image.
BIAS_LR_RATIO, HEAD_LR_RATIO, MUON_MOMENTUM = 0.053 / 0.24, 0.67 / 0.24, 0.6


def newton_schulz(g: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Approximately U V^T for g = U S V^T (quintic iteration tuned for speed, as in Muon; singular values end
    near, not at, 1). Runs in float32: CPUs have no fast bfloat16 path for this."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float() / (g.norm() + eps)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return (x.T if tall else x).to(g.dtype)


class MuonSGD(torch.optim.Optimizer):
    """Param groups with kind='muon' (4-D filters) or kind='sgd' (Nesterov SGD with coupled weight decay)."""

    def __init__(self, groups: list[dict], lr: float = 0.24, momentum: float = 0.85):
        super().__init__(groups, dict(lr=lr, momentum=momentum, weight_decay=0.0, kind="sgd"))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["kind"] == "sgd" and wd:
                    g = g.add(p, alpha=wd)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.mul_(mom).add_(g)
                g = g.add(buf, alpha=mom)  # Nesterov
                if group["kind"] == "muon":
                    p.mul_(len(p) ** 0.5 / p.norm().clamp(min=1e-12))
                    g = newton_schulz(g.reshape(len(g), -1)).view_as(g)
                p.add_(g, alpha=-lr)
        return loss


def muon_param_groups(model: nn.Module, lr: float, weight_decay: float, momentum: float,
                      batch_size: int) -> list[dict]:
    """Filters -> Muon at `lr`; head, biases and norm shifts -> SGD at airbench's rates relative to `lr`,
    scaled to this batch size. `weight_decay` is the decoupled decay per image (airbench: 2e-6)."""
    head = {id(p) for p in model.head.parameters()} if hasattr(model, "head") else set()
    bias_scale = getattr(model, "bias_lr_multiplier", 1.0)  # e.g. airbench's BN shifts already move 64x faster
    sgd_lr = lr * batch_size  # summed loss at `batch_size` -> mean loss
    stem_bias = getattr(model, "stem_bias", None)  # airbench trains its whitening bias for a few epochs only
    filters, heads, biases, scaled, stem = [], [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 4:
            filters.append(p)
        elif stem_bias is not None and name == stem_bias[0]:
            stem.append(p)
        elif id(p) in head:
            heads.append(p)
        elif name.endswith("theta"):
            scaled.append(p)
        else:
            biases.append(p)
    decay = weight_decay * batch_size  # decoupled, per step
    groups = [{"params": filters, "kind": "muon", "lr": lr, "momentum": MUON_MOMENTUM, "weight_decay": 0.0}]
    for params, group_lr, extra in ((heads, sgd_lr * HEAD_LR_RATIO, {}), (biases, sgd_lr * BIAS_LR_RATIO, {}),
                                    (scaled, sgd_lr * BIAS_LR_RATIO / bias_scale, {}),
                                    (stem, sgd_lr * BIAS_LR_RATIO, {"anneal_epochs": stem_bias and stem_bias[1]})):
        if params:
            groups.append({"params": params, "kind": "sgd", "lr": group_lr, "momentum": momentum,
                           "weight_decay": decay / group_lr if group_lr else 0.0, **extra})
    return [g for g in groups if g["params"]]
