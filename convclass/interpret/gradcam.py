"""Grad-CAM and Grad-CAM++: where in the image a convolution layer's evidence for a class lies.

Grad-CAM (Selvaraju et al. 2017): weight each channel of the layer's activation A (B, K, h, w) by the spatial
mean of d score / dA, sum, ReLU. Grad-CAM++ (Chattopadhay et al. 2018) weights positive gradients per pixel
with the closed-form alphas, which separates several instances of a class better.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConvclassError

__all__ = ["grad_cam", "find_layer", "METHODS"]

METHODS = ("gradcam", "gradcam++")


def find_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """The module called `name`, or the model's Grad-CAM default (its last convolution)."""
    if name is None:
        name = model.gradcam_layer() if hasattr(model, "gradcam_layer") else None
        if name is None:
            raise ConvclassError("this model has no convolution layer for Grad-CAM (an MLP?); pass --layer NAME "
                                 "of a layer with a spatial output")
    modules = dict(model.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ConvclassError(f"no layer named {name!r} in this model; convolution layers: {', '.join(convs[-8:])}")
    return name, modules[name]


@contextlib.contextmanager
def _no_inplace(model: nn.Module):
    """In-place activations would overwrite the hooked output before its gradient is taken."""
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str | None = None, method: str = "gradcam",
             target: torch.Tensor | int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heatmaps for normalised images x (B, C, H, W).

    Returns (cams (B, H, W) in [0, 1] upsampled bilinearly to the input size, target classes (B,), softmax
    probabilities (B, K)). `target` defaults to the predicted class.
    """
    if method not in METHODS:
        raise ConvclassError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    _, module = find_layer(model, layer)
    model.eval()
    store = {}

    def hook(_m, _inp, out):
        store["act"] = out

    handle = module.register_forward_hook(hook)
    try:
        with _no_inplace(model), torch.enable_grad():
            x = x.detach().requires_grad_(True)  # so the graph reaches the layer even with frozen weights
            logits = model(x)
            if "act" not in store or store["act"].dim() != 4:
                raise ConvclassError(f"layer {layer!r} has no (B, C, H, W) output; pick a convolution layer")
            if target is None:
                tgt = logits.argmax(1)
            else:
                tgt = torch.as_tensor(target, device=logits.device).long().expand(len(x))
            score = logits.gather(1, tgt[:, None]).sum()
            act = store["act"]
            grad, = torch.autograd.grad(score, act)
    finally:
        handle.remove()
    act, grad = act.detach(), grad.detach()
    if method == "gradcam":
        weights = grad.mean((2, 3), keepdim=True)                       # (B, K, 1, 1)
    else:
        g2, g3 = grad ** 2, grad ** 3
        denom = 2 * g2 + act.sum((2, 3), keepdim=True) * g3
        alpha = torch.where(grad != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                            torch.zeros_like(grad))
        weights = (alpha * grad.clamp(min=0)).sum((2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True))                  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    cam = (cam - lo) / (hi - lo).clamp(min=1e-12)
    return cam.cpu(), tgt.detach().cpu(), logits.detach().softmax(1).cpu()
