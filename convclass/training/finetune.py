"""Fine-tuning: start from ImageNet (--pretrained) or local (--weights) weights, prepare the data the way those
weights expect, freeze the backbone or train in stages (--fine-tune E1,E2: head only, then everything, like
fastai's `fine_tune`), lower learning rates for early layers (--lr-decay), frozen BatchNorm statistics.

fit.py calls the small hooks below; the logic lives here.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TrainConfig
from ..errors import ConvclassError

__all__ = ["resolve_config", "InputPlan", "input_plan", "init_weights", "set_stage", "regroup_optimizer",
           "layer_groups", "input_view", "training_view", "ResizeInput", "CenterCrop", "read_weights", "stored_size"]

FREEZE = ("none", "backbone")
LAYER_GROUPS = 3                 # backbone groups for discriminative learning rates (head is one more)
ON_THE_FLY_BYTES = 256 * 2**20   # decoding every image at the model's size above this -> resize per batch
EVAL_CROP_PCT = 0.875            # timm/torchvision ImageNet evaluation: Resize(256) + CenterCrop(224)


def _fine_tune_epochs(cfg: TrainConfig) -> list[int]:
    ft = cfg.fine_tune
    if isinstance(ft, str):
        try:
            ft = [int(x) for x in ft.split(",") if x.strip()]
        except ValueError:
            ft = None
    if ft is None or (ft and (len(ft) != 2 or min(ft) < 0 or sum(ft) == 0)):
        raise ConvclassError(f"--fine-tune expects E1,E2 (head-only epochs, then all-layer epochs), "
                             f"e.g. 1,3; got {cfg.fine_tune!r}")
    return list(ft)


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Check the fine-tuning options; --fine-tune E1,E2 sets epochs to E1+E2."""
    if cfg.freeze not in FREEZE:
        raise ConvclassError(f"--freeze must be one of {', '.join(FREEZE)}, not {cfg.freeze!r}")
    if not 0 < cfg.lr_decay <= 1:
        raise ConvclassError(f"--lr-decay must be in (0, 1] (1 = same rate for every layer), not {cfg.lr_decay}")
    if cfg.pretrained and cfg.channels == 1:
        raise ConvclassError("--pretrained ImageNet weights need 3 channels; drop --channels 1 "
                             "(grey images are repeated to RGB)")
    ft = _fine_tune_epochs(cfg)
    if ft:
        return cfg.update(fine_tune=ft, epochs=sum(ft))
    return cfg


# --------------------------------------------------------------------------- weights and their preprocessing

def read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state dict, preprocess or None) from a convclass checkpoint or a bare state dict file."""
    from ..checkpoint import check_finite_weights, read_tensor_file, resolve_checkpoint
    p = Path(path).expanduser()
    if not p.exists():
        raise ConvclassError(f"--weights {path}: no such file or run folder")
    try:
        sd = read_tensor_file(resolve_checkpoint(p))
    except ConvclassError as e:
        raise ConvclassError(f"--weights: {e}") from None
    pre = sd.get("preprocess") if isinstance(sd, dict) and "arch" in sd else None
    for key in ("state_dict", "model", "model_state"):  # common wrappers around a state dict
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConvclassError(f"--weights {path}: not a state dict (name -> tensor) nor a convclass checkpoint; "
                             "save it with torch.save(model.state_dict())")
    check_finite_weights(sd, path)
    return sd, pre


@dataclass
class InputPlan:
    """How to prepare the data: the model's input size, channels, and the weights' own statistics."""
    img_size: int | None         # model resolution; None: prepare_data decides as usual
    decode_size: int | None      # size images are decoded at (smaller: resized per batch on the fly)
    channels: int | None
    mean: list[float] | None     # None: computed from the training split
    std: list[float] | None
    default_size: int
    source: str = ""
    resize: str = "squash"       # how photos are decoded (data/preprocess.py)
    crop_pct: float = 1.0        # with "crop": img_size / decode_size, what the model's Preprocess records

    def prepare_kwargs(self) -> dict:
        # crop_pct 1 here: the stored square keeps the margin that evaluation's centre crop (input_view) and
        # training's random crops cut from
        return {"img_size": self.decode_size, "channels": self.channels, "default_size": self.default_size,
                "resize": self.resize}

    def apply(self, data, log) -> None:
        """Point `data` at the model resolution, the resize policy and the weights' statistics (all three stored
        in every checkpoint)."""
        if self.img_size is not None and self.img_size != data.img_size:
            how = ("aspect kept; evaluation takes the centre" if self.resize == "crop"
                   else "resized per batch to")
            log(f"note: images kept at {data.img_size}x{data.img_size} in memory ({how} {self.img_size}x"
                f"{self.img_size})")
            data.img_size = self.img_size
        if self.resize == "crop":
            data.resize, data.crop_pct = self.resize, self.crop_pct
        if self.mean is not None and len(self.mean) == data.channels:
            data.mean, data.std = [float(v) for v in self.mean], [float(v) for v in self.std]
            log(f"note: normalising with the {self.source} statistics (mean {_fmt(data.mean)}, std {_fmt(data.std)})")


def _fmt(v: list[float]) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"


def _native_size(cfg: TrainConfig) -> tuple[int, int]:
    """(side of the training images if all are square and equal else 0, number of images in all splits)."""
    from ..data import find_data
    from ..data.sources import DataOptions
    from ..data.decode import peek_files
    spec = find_data(cfg.data, cfg.data_root, DataOptions.from_config(cfg))
    n = sum(len(s) for s in (spec.train, spec.val, spec.test) if s is not None)
    if spec.train.arrays is not None:
        h, w = spec.train.arrays.shape[1:3]
        return (h if h == w else 0), n
    sizes, _ = peek_files(spec.train.paths or [])
    (w, h), = sizes if len(sizes) == 1 else ((0, 1),)
    return (w if w == h else 0), n


def input_plan(cfg: TrainConfig, default_size: int) -> InputPlan:
    """Resolution, channels and statistics for prepare_data, from the flags and the starting weights."""
    pre, source = None, ""
    if cfg.weights:
        _, pre = read_weights(cfg.weights)
        source = f"--weights {cfg.weights}"
    if pre is None and cfg.pretrained:
        from ..models.pretrained import weights_preprocess
        pre, source = weights_preprocess(cfg.model), f"{cfg.model} ImageNet weights"
    channels = cfg.channels or (3 if cfg.pretrained else (pre or {}).get("channels"))
    target = cfg.img_size or (pre or {}).get("img_size")
    plan = InputPlan(img_size=None, decode_size=target, channels=channels, mean=(pre or {}).get("mean"),
                     std=(pre or {}).get("std"), default_size=default_size, source=source)
    if target is None:
        return plan
    native, n = _native_size(cfg)
    if native and native * 2 <= target and n * (channels or 3) * target ** 2 > ON_THE_FLY_BYTES:
        # e.g. CIFAR at 224: 60,000 x 3 x 224 x 224 bytes = 9 GB decoded, 184 MB at 32x32 resized per batch
        plan.decode_size, plan.img_size = native, target
    elif cfg.recipe == "finetune":
        # The convention the ImageNet weights were trained with: aspect kept, shorter side to S, centre crop.
        # Decoded once at S x S, so training's random crops have a margin to move in.
        s = stored_size(target)
        plan.decode_size, plan.img_size, plan.resize, plan.crop_pct = s, target, "crop", target / s
    return plan


def stored_size(img_size: int) -> int:
    """About img_size / 0.875 (256 for 224), with an even margin: the centre img_size crop of the stored square
    is then pixel for pixel Preprocess(resize="crop", crop_pct=img_size / S) applied to the original photo."""
    return img_size + 2 * round(img_size * (1 / EVAL_CROP_PCT - 1) / 2)


def init_weights(model: nn.Module, cfg: TrainConfig, log) -> None:
    """Load --pretrained and/or --weights into a freshly built model, logging one line for each."""
    from ..models.pretrained import load_matching, load_pretrained
    if cfg.pretrained:
        log(load_pretrained(model, cfg.model))
    if cfg.weights:
        sd, _ = read_weights(cfg.weights)
        log(load_matching(model, sd, f"--weights {cfg.weights}"))


# --------------------------------------------------------------------------- freezing and learning rates

def _is_head(name: str) -> bool:
    return name.startswith("head.")


def set_stage(model: nn.Module, cfg: TrainConfig, epoch: int, log) -> None:
    """Before each epoch (0-based): freeze the backbone when --freeze backbone or in --fine-tune's first stage."""
    ft = cfg.fine_tune if isinstance(cfg.fine_tune, list) else []
    frozen = cfg.freeze == "backbone" or (bool(ft) and epoch < ft[0])
    changed = False
    for name, p in model.named_parameters():
        want = _is_head(name) or not frozen
        changed |= p.requires_grad != want
        p.requires_grad_(want)
    if changed or epoch == 0:
        if frozen:
            log(f"epoch {epoch + 1}: backbone frozen, training the head only")
        elif ft and epoch == ft[0]:
            log(f"epoch {epoch + 1}: all layers trainable")


def layer_groups(model: nn.Module, n: int = LAYER_GROUPS) -> list[list[nn.Parameter]]:
    """Parameters in n backbone groups (input side first, about equal size) followed by the head."""
    body = model.features if hasattr(model, "features") else model
    while len(list(body.children())) == 1:  # wrappers (e.g. a timm body) hold one child: look inside
        body = next(body.children())
    blocks = [list(c.parameters()) for c in body.children()] or [list(body.parameters())]
    blocks = [b for b in blocks if b]
    total = sum(p.numel() for b in blocks for p in b)
    groups: list[list[nn.Parameter]] = [[] for _ in range(n)]
    seen = 0
    for b in blocks:
        groups[min(n - 1, int(n * seen / max(total, 1)))] += b
        seen += sum(p.numel() for p in b)
    head = [p for name, p in model.named_parameters() if _is_head(name)]
    ids = {id(p) for g in groups for p in g} | {id(p) for p in head}
    rest = [p for p in model.parameters() if id(p) not in ids]  # anything outside features/head: the last group
    return [g for g in groups if g] + [head + rest]


def regroup_optimizer(opt: torch.optim.Optimizer, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """With --lr-decay d < 1: the same optimizer type, with lr * d^k for the k-th group counted from the head."""
    if cfg.lr_decay >= 1:
        return opt
    groups = layer_groups(model)
    out = []
    for k, params in enumerate(reversed(groups)):
        lr = cfg.lr * cfg.lr_decay ** k
        decay = [p for p in params if p.ndim > 1]    # same rule as optim.py: no decay on biases and norms
        no_decay = [p for p in params if p.ndim <= 1]
        # lr_scale lets the log show the rate --lr names (the head's) whichever group it reads
        out += [{"params": decay, "lr": lr, "weight_decay": cfg.weight_decay, "lr_scale": cfg.lr_decay ** k},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0, "lr_scale": cfg.lr_decay ** k}]
    # Some defaults are derived, not constructor arguments (AdamW's decoupled_weight_decay): keep only those.
    accepted = inspect.signature(type(opt)).parameters
    return type(opt)([g for g in reversed(out) if g["params"]],
                     **{k: v for k, v in opt.defaults.items() if k in accepted})


# --------------------------------------------------------------------------- the model as training sees it

class _FromStored(nn.Module):
    """The model behind the step from stored images (B, C, stored, stored) to its input (B, C, size, size).
    Batches of any other size pass unchanged: a training augmentation already cut them to the size it chose."""

    def __init__(self, model: nn.Module, size: int, stored: int):
        super().__init__()
        self.model, self.size, self.stored = model, size, stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.adapt(x) if x.shape[-2:] == (self.stored, self.stored) else x)


class ResizeInput(_FromStored):
    """Images kept small in memory (e.g. CIFAR's 32x32 for a model at 224), resized per batch."""

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                             antialias=x.shape[-1] > self.size)


class CenterCrop(_FromStored):
    """Images stored with a margin (the crop policy at stored_size): the centre, as data/images.py crops."""

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
        return x[..., top:top + self.size, left:left + self.size]


def input_view(model: nn.Module, data) -> nn.Module:
    """The model, or the model behind a per-batch resize (data stored below its resolution) or centre crop
    (stored above it, the crop policy)."""
    stored = data.train.x.shape[-1]
    if stored == data.img_size:
        return model
    crop = data.resize == "crop" and stored > data.img_size
    return (CenterCrop if crop else ResizeInput)(model, data.img_size, stored)


def training_view(model: nn.Module, data, cfg: TrainConfig) -> nn.Module:
    """input_view in training mode (batches an augmentation cut to another size than the stored one pass
    unchanged), except frozen parts (and all BatchNorm with --freeze-bn) stay in eval mode: frozen layers keep
    their running statistics and skip dropout, so they really do not change."""
    view = input_view(model, data)
    view.train()
    for m in model.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()
        elif cfg.freeze_bn and isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return view
