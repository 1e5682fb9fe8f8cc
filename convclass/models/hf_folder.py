"""A shareable model folder in the Hugging Face layout: `model.safetensors` (the weights) and `config.json`
(architecture, classes, preprocessing, metrics), plus a model card README.md written by export/hf.py.

A `timm:NAME` model's folder is also timm's: its weights carry timm's own names and config.json timm's
`architecture`, `pretrained_cfg` and `model_args`, so `timm.create_model("local-dir:FOLDER", pretrained=True)`
loads it; convclass maps the names back when it reads the folder.

Reading one is reading data only: safetensors holds named tensors and nothing that runs, and config.json is
bounded in size and checked key by key here, then field by field by `model_from_checkpoint` like any checkpoint.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import torch

from .. import checks
from ..checkpoint import FORMAT as CHECKPOINT_FORMAT, check_format, first_line
from ..errors import ConvclassError
from ..safeio import Refused, read_regular

__all__ = ["FOLDER_FORMAT", "WEIGHTS", "CONFIG", "is_model_folder", "write_model_folder", "read_model_folder"]

FOLDER_FORMAT = "convclass-hf-v1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
MAX_CONFIG_BYTES = 16 * 2**20   # 100,000 class names of 100 characters; a real config is a few kB
MAX_WEIGHTS_BYTES = 8 * 2**30   # 2 billion fp32 weights, past any registry or common timm model
MAX_TENSORS = 10_000            # convnext_base has 344
KEYS = {"format": str, "library_name": str, "arch": str, "arch_args": dict, "num_classes": int,
        "classes": list, "class_names": (list, type(None)), "preprocess": dict, "metrics": dict, "task": str,
        "thresholds": (list, type(None))}
OPTIONAL = ("class_names", "metrics", "library_name", "task", "thresholds")
HINT = "export it again with `convclass export RUN --format hf`"
PREFIX, BODY = "timm:", "features.model."
TIMM_OWN = ("num_classes", "img_size", "pretrained")  # set by timm's config or not timm's arguments


def is_model_folder(path: str | Path) -> bool:
    """A folder holding config.json and model.safetensors and no run checkpoint (a run folder wins)."""
    p = Path(path).expanduser()
    return (p.is_dir() and (p / CONFIG).exists() and (p / WEIGHTS).exists()
            and not (p / "best.pt").exists() and not (p / "last.pt").exists())


def write_model_folder(ckpt: dict, folder: str | Path) -> list[Path]:
    """The weights and config.json of a checked checkpoint (model_from_checkpoint's) into `folder`."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # contiguous copies: safetensors refuses views and tensors sharing memory (tied weights load back the same)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt["model_state"].items()}
    arch, pre = ckpt["arch"], ckpt["preprocess"]
    config = {"format": FOLDER_FORMAT, "library_name": "convclass", "arch": arch, "architecture": arch,
              "arch_args": dict(ckpt["arch_args"]), "num_classes": len(ckpt["classes"]),
              "classes": list(ckpt["classes"]), "class_names": ckpt.get("class_names"), "preprocess": dict(pre),
              "metrics": {k: v for k, v in (ckpt.get("metrics") or {}).items() if checks.is_num(v)}}
    if arch.startswith(PREFIX):
        from .timm_models import timm_pretrained_cfg
        head = timm_pretrained_cfg(arch).get("classifier") or "fc"
        state = {_to_timm(k, head): v for k, v in state.items()}
        config.update(architecture=arch[len(PREFIX):], label_names=list(ckpt["classes"]),
                      model_args={k: v for k, v in ckpt["arch_args"].items() if k not in TIMM_OWN},
                      pretrained_cfg={"classifier": head, "num_classes": len(ckpt["classes"]),
                                      "input_size": [pre["channels"], pre["img_size"], pre["img_size"]],
                                      "mean": list(pre["mean"]), "std": list(pre["std"]),
                                      "crop_pct": pre.get("crop_pct", 1.0), "interpolation": "bilinear",
                                      "crop_mode": "center" if pre.get("resize") == "crop" else "squash"})
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt", "library": "convclass"})
    # multi-label models answer per label at their own thresholds (metrics/multilabel.py)
    config.update({k: ckpt[k] for k in ("task", "thresholds") if ckpt.get(k) is not None})
    (folder / CONFIG).write_text(json.dumps(config, indent=1))
    return [folder / WEIGHTS, folder / CONFIG]


def read_model_folder(folder: str | Path) -> dict:
    """config.json and model.safetensors as a checkpoint dict for model_from_checkpoint; else a one-line error."""
    folder = Path(folder).expanduser()
    config = _read_config(folder / CONFIG)
    state = _read_weights(folder / WEIGHTS)
    if config["arch"].startswith(PREFIX):  # timm's names back to the wrapper's (a wrong head name fails the fit)
        cfg = config.get("pretrained_cfg")
        head = cfg.get("classifier") if isinstance(cfg, dict) else None
        state = {_from_timm(k, head if isinstance(head, str) and head else "fc"): v for k, v in state.items()}
    return {"format": CHECKPOINT_FORMAT, "arch": config["arch"], "arch_args": config["arch_args"],
            "classes": config["classes"], "class_names": config.get("class_names"),
            "preprocess": config["preprocess"], "metrics": config.get("metrics") or {},
            "task": config.get("task"), "thresholds": config.get("thresholds"),  # checked where they are used
            "model_state": state}


def _to_timm(key: str, head: str) -> str:
    """convclass's timm wrapper (timm_models.py): features.model.<timm name>, head.0.<classifier param>."""
    return head + key[len("head.0"):] if key.startswith("head.0.") else key[len(BODY):]


def _from_timm(key: str, head: str) -> str:
    return "head.0" + key[len(head):] if key.startswith(head + ".") else BODY + key


def _read_config(path: Path) -> dict:
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES)
        config = json.loads(raw)
    except Refused as e:
        raise ConvclassError(f"refusing {path}: {e}; {HINT}") from None
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, nesting past the stack
        raise ConvclassError(f"refusing {path}: not valid JSON ({first_line(e, 80)}); {HINT}") from None
    if not isinstance(config, dict):
        raise ConvclassError(f"refusing {path}: it holds a {type(config).__name__}, not a mapping; {HINT}")
    check_format(config.get("format"), path, current=FOLDER_FORMAT, since="0.1.0")
    for key, kind in KEYS.items():  # the keys read; others (a hub's additions) are never read
        if (key in config or key not in OPTIONAL) and not isinstance(config.get(key), kind):
            want = kind.__name__ if isinstance(kind, type) else "list or null"
            raise ConvclassError(f"refusing {path}: its {key!r} must be a JSON {want}; {HINT}")
    if config["num_classes"] != len(config["classes"]):
        raise ConvclassError(f"refusing {path}: num_classes {config['num_classes']} but {len(config['classes'])} "
                             f"classes; {HINT}")
    return config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    try:
        st = os.stat(path)  # after symlinks: never a FIFO (a blocked open) or a device (/dev/zero)
    except OSError as e:
        raise ConvclassError(f"cannot read {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_WEIGHTS_BYTES:
        why = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"over {MAX_WEIGHTS_BYTES // 2**30} GB"
        raise ConvclassError(f"refusing {path}: {why}; {HINT}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:  # reads the header; tensors on demand
            names = list(f.keys())
            if len(names) > MAX_TENSORS:
                raise ConvclassError(f"refusing {path}: {len(names):,} tensors (limit {MAX_TENSORS:,}); {HINT}")
            return {k: f.get_tensor(k) for k in names}
    except ConvclassError:
        raise
    except Exception as e:  # safetensors raises its own error types for malformed headers and offsets
        raise ConvclassError(f"refusing {path}: not a readable safetensors file ({first_line(e, 120)}); "
                             f"{HINT}") from None
