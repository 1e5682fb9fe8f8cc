"""Any timm model as `--model timm:<name>`, behind the common Classifier interface (timm is an optional extra:
`pip install convclass[timm]`).

The timm network without its classifier becomes `features` (image -> pooled vector); its classifier, a Linear,
becomes `head`, so freezing, discriminative learning rates and head replacement work as for built-in models.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConvclassError
from .base import Classifier

__all__ = ["timm_entry", "timm_pretrained_cfg", "timm_state_dict", "PREFIX"]

PREFIX = "timm:"


def _timm():
    try:
        import timm
    except ImportError:
        raise ConvclassError("--model timm:<name> needs timm; run `pip install timm` "
                             "(or `pip install convclass[timm]`)") from None
    return timm


def _timm_name(name: str) -> str:
    tname = name[len(PREFIX):]
    if not _timm().is_model(tname):
        raise ConvclassError(f"timm has no model {tname!r}; `python -c \"import timm; print(timm.list_models())\"` "
                             "lists them")
    return tname


class _TimmBody(nn.Module):
    """timm model minus classifier: (B, C, H, W) -> pooled features (B, D)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def _build(tname: str, num_classes: int, in_chans: int = 3, img_size: int = 224, **kw) -> Classifier:
    # Never pretrained here: a checkpoint rebuilds the model from its arch_args, which must not need a download.
    try:
        m = _timm().create_model(tname, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):  # the only binding failure; anything else is a bug
            raise
        raise ConvclassError(f"model timm:{tname}: bad model argument ({e}); check --model-arg names") from None
    fc = m.get_classifier()
    if not isinstance(fc, nn.Linear):
        raise ConvclassError(f"timm:{tname} has a {type(fc).__name__} classifier, not a Linear layer; "
                             "pick another timm model")
    m.reset_classifier(0)
    return Classifier(_TimmBody(m), nn.Sequential(fc))


def timm_entry(name: str):
    """A registry entry for `timm:<name>` (made on demand, since timm lists over a thousand models)."""
    from .registry import ModelEntry
    tname = _timm_name(name)
    size = int(timm_pretrained_cfg(name).get("input_size", (3, 224, 224))[-1])

    def fn(num_classes: int, in_chans: int = 3, img_size: int = size, **kw):
        return _build(tname, num_classes, in_chans, img_size, **kw)
    return ModelEntry(name, fn, size, f"timm {tname}")


def timm_pretrained_cfg(name: str) -> dict:
    cfg = _timm().models.get_pretrained_cfg(_timm_name(name))
    return cfg.to_dict() if cfg is not None else {}


def timm_state_dict(name: str) -> dict[str, torch.Tensor]:
    """timm's ImageNet weights (from its cache, else downloaded by timm) under this wrapper's key names."""
    tname = _timm_name(name)
    try:
        m = _timm().create_model(tname, pretrained=True)
    except Exception as e:  # offline: huggingface_hub / urllib errors of many kinds
        why = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise ConvclassError(f"ImageNet weights for timm:{tname} could not be loaded ({why}); run once online "
                             "so timm caches them (HF_HOME), or pass --weights PATH") from None
    fc_name = m.pretrained_cfg.get("classifier", "")
    out = {}
    for k, v in m.state_dict().items():
        out[("head.0" + k[len(fc_name):]) if fc_name and k.startswith(fc_name + ".") else "features.model." + k] = v
    return out
