"""`model_from_checkpoint`: the one way a trained model is rebuilt from its checkpoint alone (predict, evaluate,
explain, export, serve and the test that ends training all call it).

A checkpoint is data from outside. Its format tag, preprocessing, class names and architecture arguments are
checked before anything is built, and the model is first built on the meta device (shapes, no memory) and
compared with the weights the file holds: a crafted file naming a width of 10^6 is refused instead of
allocating gigabytes.
"""
from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn

from .. import checks
from ..checkpoint import check_loaded, first_line as _first_line, load_checkpoint, resolve_checkpoint
from ..data.preprocess import Preprocess
from ..errors import ConvclassError
from .factory import COMMON_ARGS, bad_model_args, create_model, model_entry
from .hf_folder import is_model_folder, read_model_folder
from .registry import ModelEntry

__all__ = ["Rebuilt", "model_from_checkpoint"]

HINT = "use a checkpoint written by convclass (runs/NAME/best.pt)"
MAX_ARGS = 32          # knobs per model; the registry's builders take at most 7
MAX_ARG_NUMBER = 2 ** 31
MAX_ARG_TEXT = 200
MAX_ARG_LIST = 64      # e.g. airbench's per-stage widths


class Rebuilt(NamedTuple):
    model: nn.Module           # on the device asked for, in eval mode
    preprocess: Preprocess
    classes: list[str]
    ckpt: dict                 # the checkpoint as loaded: weights, arch, config, metrics, ...


def model_from_checkpoint(ckpt_or_path: dict | str | Path, device: torch.device | str = "cpu") -> Rebuilt:
    """The model a checkpoint (a loaded dict, a .pt file, a run folder or an `export --format hf` folder)
    describes, its weights loaded, checked to take the input its preprocessing describes and to give one score per
    class; else a one-line error."""
    if isinstance(ckpt_or_path, dict):
        path, ckpt = "checkpoint (dict)", ckpt_or_path
        check_loaded(ckpt, path)  # what load_checkpoint checks of a file: format tag, finite weights
    elif is_model_folder(ckpt_or_path):  # `export --format hf`: safetensors + config.json, data only
        path, ckpt = Path(ckpt_or_path), read_model_folder(ckpt_or_path)
        check_loaded(ckpt, path)
    else:
        path = resolve_checkpoint(ckpt_or_path)
        ckpt = load_checkpoint(path)  # checks the format tag and that the weights are finite
    pre = Preprocess.from_dict(ckpt.get("preprocess"), path, HINT)
    try:
        classes = checks.class_names(ckpt.get("classes"))
        arch = checks.text("arch", ckpt.get("arch"))
    except checks.Invalid as e:
        raise checks.refusal(e, path, "checkpoint", HINT) from None
    entry = model_entry(arch)
    args = _checked_args(entry, ckpt.get("arch_args"), pre, len(classes), path)
    state = ckpt.get("model_state")
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise ConvclassError(f"refusing {path}: its model_state is not a mapping of names to tensors; {HINT}")
    _check_fit(arch, args, state, path)
    model = create_model(arch, **args)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # e.g. a dtype torch cannot copy; names and shapes were compared already
        raise ConvclassError(f"{path}: the checkpoint does not describe a usable model ({_first_line(e)})") from None
    model.to(device).eval()
    c, s = pre.channels, pre.img_size
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, c, s, s, device=device))
    except RuntimeError as e:
        raise ConvclassError(f"{path}: the model cannot run on the {c}x{s}x{s} input its checkpoint describes "
                             f"({_first_line(e)})") from None
    checks.check_output_shape(tuple(out.shape), 1, len(classes), path)
    return Rebuilt(model, pre, classes, ckpt)


def _declared(entry: ModelEntry) -> dict[str, tuple]:
    """Per keyword of the builder, the types its annotation allows (an int where a float is declared too)."""
    try:
        hints = typing.get_type_hints(entry.fn)
    except (NameError, TypeError):  # an annotation that does not resolve: its keywords take numbers and flags
        return {}
    out = {}
    for name, hint in hints.items():
        kinds = {typing.get_origin(t) or t for t in (typing.get_args(hint) or (hint,))}
        out[name] = tuple(t for t in kinds | ({int} if float in kinds else set()) if isinstance(t, type))
    return out


def _value_ok(v, kinds: tuple) -> bool:
    """Plain data of a declared type, and small: sizes come from the meta-device comparison, not from here."""
    if isinstance(v, bool) or v is None:
        return type(v) in kinds
    if isinstance(v, (int, float)):
        return type(v) in kinds and math.isfinite(v) and abs(v) <= MAX_ARG_NUMBER
    if isinstance(v, str):
        return str in kinds and len(v) <= MAX_ARG_TEXT
    if isinstance(v, list):
        return list in kinds and len(v) <= MAX_ARG_LIST and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ARG_NUMBER for i in v)
    return False


def _checked_args(entry: ModelEntry, args, pre: Preprocess, n_classes: int, path) -> dict:
    """arch_args checked against the builder's signature and the checkpoint's own preprocessing and classes."""
    if not (isinstance(args, dict) and len(args) <= MAX_ARGS + len(COMMON_ARGS)
            and all(isinstance(k, str) and k.isidentifier() for k in args) and set(COMMON_ARGS) <= set(args)):
        raise ConvclassError(f"refusing {path}: its arch_args must map {', '.join(COMMON_ARGS)} and at most "
                             f"{MAX_ARGS} knobs to values; {HINT}")
    try:
        checks.need(args["num_classes"] == n_classes and type(args["num_classes"]) is int, "num_classes",
                    args["num_classes"], f"{n_classes}, one output for each of its {n_classes} classes")
        checks.need(args["in_chans"] == pre.channels and type(args["in_chans"]) is int, "in_chans",
                    args["in_chans"], f"{pre.channels} (the channels of its preprocess)")
        checks.whole("img_size", args["img_size"], 1, checks.MAX_IMG_SIZE)
        declared = _declared(entry)
        for k, v in args.items():
            # keywords without an annotation (a timm model's **kwargs) take numbers and flags only: no paths
            kinds = declared.get(k, (bool, int, float))
            checks.need(_value_ok(v, kinds), k, v, "a small, finite " + " or ".join(sorted(t.__name__ for t in kinds)))
    except checks.Invalid as e:
        raise checks.refusal(e, path, "arch_args", HINT) from None
    why = bad_model_args(entry, args)
    if why:
        raise ConvclassError(f"refusing {path}: its arch_args do not fit model {entry.name} ({why}); {HINT}")
    if "pretrained" in args:
        args = {**args, "pretrained": False}  # the checkpoint's weights replace any starting weights
    return args


def _check_fit(arch: str, args: dict, state: dict, path) -> None:
    """Build the model on the meta device (no memory) and compare its tensors' names and shapes with the file's.

    TODO: the first forward on the meta device (classic heads size themselves with one) loads torch's meta
    kernels, about 1 s of start-up for predict/evaluate/serve and the final test; a builder that computes its
    head size arithmetically would avoid it."""
    try:
        with torch.device("meta"):
            skeleton = create_model(arch, **args)
    except (ValueError, RuntimeError, ArithmeticError, IndexError) as e:
        if isinstance(e, NotImplementedError) or "meta" in str(e):
            return  # a builder that reads tensor values while building: sized by building it, as before
        raise ConvclassError(f"refusing {path}: model {arch} cannot be built from its arch_args "
                             f"({type(e).__name__}: {_first_line(e)}); {HINT}") from None
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want == have:
        return
    missing, unexpected = [k for k in want if k not in have], [k for k in have if k not in want]
    differ = [k for k in want if k in have and want[k] != have[k]]
    detail = (f"{differ[0]} is {list(have[differ[0]])} in the file but {list(want[differ[0]])} in the model"
              if differ else f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}")
    # An older convclass built some models in other shapes (the classic heads before issue 20): same one line.
    raise ConvclassError(f"{path}: the checkpoint does not describe a usable model (its weights do not fit {arch} "
                         f"built from its arch_args: {detail}); {HINT}, or retrain it if an older convclass wrote it "
                         f"(its {arch} had another shape)")
