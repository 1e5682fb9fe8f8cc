"""`convclass explain`: Grad-CAM overlays, activation panels and first-layer filters for a trained model."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConvclassError
from ..inference import LoadedModel, expand_inputs, load_model
from ..metrics.multilabel import labels_above
from .draw import plot_channels, plot_filters, plot_overlay
from .gradcam import find_layer, grad_cam

__all__ = ["explain_images", "feature_maps"]


def _stem(path: str, i: int) -> str:
    return f"{i:03d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:60]


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layer: str) -> np.ndarray:
    """Output of `layer` for normalised images x (B, C, H, W): (B, channels, h, w) as float32."""
    _, module = find_layer(model, layer)
    store = {}
    handle = module.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out.detach().float().cpu()))
    try:
        model.eval()
        model(x)
    finally:
        handle.remove()
    a = store["a"]
    if a.dim() != 4:
        raise ConvclassError(f"layer {layer!r} outputs shape {tuple(a.shape)}, not (B, C, H, W); "
                             "pick a convolution or pooling layer")
    return a.numpy()


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    return None


def explain_images(run_or_ckpt: str | Path | LoadedModel, images: list[str], method: str = "gradcam",
                   layer: str | None = None, output: str | Path | None = None, target: str | None = None,
                   feature_layer: str | None = None, device: str = "auto") -> dict:
    """Heatmap overlays for image files (one PNG each); with `feature_layer`, that layer's activations per image
    and the first convolution's filters. Returns {items: [{path, predicted, probability, target, overlay}],
    skipped, layer, output_dir, filters}."""
    lm = run_or_ckpt if isinstance(run_or_ckpt, LoadedModel) else load_model(run_or_ckpt, device)
    paths = expand_inputs(images)
    x, ok, bad = lm.preprocess_files(paths)
    if not ok:
        raise ConvclassError(f"none of the {len(paths)} input file(s) could be read: "
                             + "; ".join(f"{p} ({r})" for p, r in bad[:3]))
    tgt = None
    if target is not None:
        if target not in lm.classes:
            raise ConvclassError(f"--target {target!r} is not one of the model's classes "
                                 f"({', '.join(lm.classes[:10])}{', ...' if len(lm.classes) > 10 else ''})")
        tgt = lm.classes.index(target)
    layer_name, _ = find_layer(lm.model, layer)
    src = Path(lm.checkpoint_path)
    out = Path(output) if output else (src if src.is_dir() else src.parent) / "explain"
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(0, len(ok), 64):
        xb = x[i:i + 64]
        cams, tg, probs = grad_cam(lm.model, lm.preprocess.to_input(xb, lm.device), layer_name, method, tgt)
        if lm.task == "multi":  # per-label sigmoid, not grad_cam's softmax; --target picks the label explained
            probs = lm.predict_proba(xb)
        for j in range(len(xb)):
            n = i + j
            pred = int(probs[j].argmax())
            title = (f"{Path(ok[n]).name}: predicted {lm.classes[pred]} ({probs[j, pred]:.2f}); "
                     f"{method} for {lm.classes[int(tg[j])]} at {layer_name}")
            png = plot_overlay(xb[j].numpy(), cams[j].numpy(), title, out / f"{_stem(ok[n], n)}_{method}.png")
            item = {"path": ok[n], "predicted": lm.classes[pred], "probability": float(probs[j, pred]),
                    "target": lm.classes[int(tg[j])], "overlay": str(png)}
            if lm.task == "multi":  # every label at or above its threshold
                item["labels"] = labels_above(probs[j:j + 1].numpy(), lm.classes, lm.thresholds)[0]
            if feature_layer:
                act = feature_maps(lm.model, lm.preprocess.to_input(xb[j:j + 1], lm.device), feature_layer)[0]
                item["feature_maps"] = str(plot_channels(
                    act, f"{Path(ok[n]).name}: activations of {feature_layer}",
                    out / f"{_stem(ok[n], n)}_features_{feature_layer}.png"))
            items.append(item)
    filters = None
    if feature_layer:
        first = _first_conv(lm.model)
        if first is not None:
            filters = str(plot_filters(first[1].weight.detach().float().cpu().numpy(),
                                       f"first-layer filters ({first[0]})", out / "filters.png"))
    return {"items": items, "skipped": bad, "layer": layer_name, "method": method, "output_dir": str(out),
            "filters": filters}
