"""A fitted linear probe as the head's starting point (--head-probe; the finetune recipe's default).

The frozen stage hands the head a few dozen optimizer steps, warm-up rates included (one cycle starts at 1/25 of
its peak): a new head ends that stage far from where it could be, and the first all-layer steps then push
gradients from a poor head into the pretrained filters. Fitting the head first as a logistic regression on the
frozen features (linear probe, then fine-tune: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features")
starts the whole run from the best linear head the features allow, scaled to the run's loss (label
smoothing wants softer logits than a plain logistic regression makes). The features are the ones frozen.py caches
anyway, so the fit costs seconds: scikit-learn's multinomial LogisticRegression (L-BFGS) on standardised
features, the scaling folded back into the layer's weights.

Fitted once, at the first step of a fresh run: a resumed run keeps the head its checkpoint holds.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch
import torch.nn as nn

__all__ = ["fit_linear_head", "match_loss_scale", "maybe_probe", "probe_layer"]

C = 1.0          # scikit-learn's default inverse regularisation strength, on standardised features
MAX_ITER = 300   # L-BFGS iterations: ~1 s for 2,000 x 1,280 features and 10 classes on one core
TRAINS_NOTHING = (nn.Dropout, nn.Identity)  # layers before the linear one that change nothing at evaluation


def probe_layer(head: nn.Module) -> nn.Linear | None:
    """The head's one trainable layer when the head is (dropout...,) Linear; else None (nothing to fit)."""
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    *before, last = layers
    if type(last) is nn.Linear and all(type(m) in TRAINS_NOTHING for m in before):
        return last
    return None


@torch.no_grad()
def fit_linear_head(layer: nn.Linear, feats: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Set `layer` to the logistic regression of y on feats (N, D); returns the training accuracy. Classes absent
    from y keep a weight of zero and a bias far below the others, as a trained head would leave them."""
    from sklearn.linear_model import LogisticRegression

    x = feats.float().reshape(len(feats), -1).cpu().numpy().astype(np.float64)
    labels = y.cpu().numpy()
    has_bias = layer.bias is not None
    # centring moves a constant into the bias: a layer without one is fitted on scaled, uncentred features
    mu, sd = (x.mean(0) if has_bias else np.zeros(x.shape[1])), x.std(0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=MAX_ITER, fit_intercept=has_bias)
    with warnings.catch_warnings():  # not converging within MAX_ITER is still a far better start than random
        warnings.simplefilter("ignore")
        clf.fit((x - mu) / sd, labels)
    coef, bias = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row, the logit of the second class
        coef, bias = np.concatenate([-coef / 2, coef / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    w = np.zeros((num_classes, x.shape[1]))
    b = np.full(num_classes, (bias.min() - 10.0) if len(bias) else 0.0)
    w[clf.classes_], b[clf.classes_] = coef / sd, bias - (coef / sd) @ mu
    layer.weight.copy_(torch.from_numpy(w).to(layer.weight))
    if has_bias:
        layer.bias.copy_(torch.from_numpy(b).to(layer.bias))
    return float((clf.predict((x - mu) / sd) == labels).mean())


@torch.no_grad()
def match_loss_scale(layer: nn.Linear, feats: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> float:
    """Scale the fitted layer by the factor that minimises the run's own loss on the training features.

    A logistic regression fitted on nearly separable features makes confident logits; trained on with label
    smoothing (the finetune recipe's 0.1) such a head starts with a large loss whose gradient, once the backbone
    unfreezes, goes into the pretrained filters to shrink the logits (measured: validation 79.8 % after the probe
    fell to 65 % after the first all-layer epoch). Rescaled, the head keeps its decisions (argmax is unchanged)
    and starts at the lowest loss its direction allows. Returns the factor."""
    import torch.nn.functional as F
    logits = layer(feats.float().reshape(len(feats), -1))
    scales = torch.logspace(-3, 0, 121)  # shrinking only: without smoothing the fit is already the loss's minimum
    losses = [float(F.cross_entropy(logits * s, y, label_smoothing=label_smoothing)) for s in scales]
    best = float(scales[int(np.argmin(losses))])
    layer.weight.mul_(best)
    if layer.bias is not None:
        layer.bias.mul_(best)
    return best


def maybe_probe(state, head: nn.Module, feats: torch.Tensor) -> None:
    """Fit the head's linear layer on view 0 (the images as evaluation sees them) when asked and fresh."""
    if not state.cfg.head_probe or state.step != 0:
        return
    layer, y = probe_layer(head), state.data.train.y
    if y.dim() != 1:  # label rows (multi-label): a per-label regression is not what this fits
        state.log("note: --head-probe fits single-label heads; this multi-label head trains as is")
        return
    if layer is None:
        state.log("note: --head-probe needs a head of (dropout,) one linear layer; this one trains as is")
        return
    t0 = time.perf_counter()
    acc = fit_linear_head(layer, feats[0], y, len(state.data.classes))
    scale = match_loss_scale(layer, feats[0], y, state.cfg.label_smoothing)
    state.log(f"head: fitted as a linear probe on the frozen features ({acc:.2%} of training images right, "
              f"logits x {scale:.3g} for the run's loss; {time.perf_counter() - t0:.1f} s)")
