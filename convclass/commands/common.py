"""Flag helpers shared by subcommands that take the training options (train, and later cv, tune, ...)."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from ..config import TrainConfig, load_config
from ..errors import ConvclassError

__all__ = ["add_config_flags", "config_from_args"]

# Help text for train flags; anything not listed falls back to the field name.
HELP = {
    "data": "built-in name (digits, mnist, fashion-mnist, cifar10, cifar100, flowers102, tiny-imagenet), "
            "a folder (train/ test/ [val/], or class sub-folders) or a CSV of path,label",
    "model": "architecture (see `convclass models`)",
    "augment": "none | flip-crop | alt-flip-translate | shift-rotate | color | randaugment | trivialaugment",
    "schedule": "none | step | multistep | cosine | onecycle | triangle | linear | plateau",
    "optimizer": "sgd | adam | adamw | rmsprop | adagrad | muon (Muon for conv filters, SGD for the rest)",
    "balance": "none | loss (class-weighted loss) | sampler (weighted sampler)",
    "micro_batch": "forward/backward each batch in chunks of this many images and step once (gradient "
                   "accumulation): the --batch-size update with less memory",
    "lookahead": "airbench's lookahead: every 5 steps pull the weights toward a slow average that tightens as "
                 "training ends (--no-lookahead turns a recipe's off)",
    "workers": "DataLoader processes that run per-image augmentations (shift-rotate, color, randaugment, "
               "trivialaugment) ahead of the training step; default: one per core beyond two, at most 4; 0: "
               "augment in the training process",
    "patience": "early stopping after this many epochs without validation improvement",
    "device": "auto | cpu | cuda",
    "milestones": "comma-separated epochs for the multistep schedule, e.g. 30,60",
    "model_args": "model knob as KEY=VALUE (repeatable), e.g. --model-arg width=2",
    "pretrained": "start from ImageNet weights (torchvision models, efficientnet_lite0 offline, timm:<name>); "
                  "resolution and mean/std follow the weights",
    "weights": "start from a state dict or convclass checkpoint/run folder (the head is re-created when the "
               "class count differs)",
    "freeze": "none | backbone (train the head only)",
    "fine_tune": "E1,E2: E1 epochs head only, then E2 epochs all layers (sets --epochs E1+E2)",
    "lr_decay": "discriminative learning rates: lr x this per layer group from the head to the input (1 = off)",
    "freeze_bn": "keep BatchNorm running statistics fixed while training",
    "recipe": "named preset of options: fast (airbench94_muon on the CPU) or fast-sgd (airbench94); see "
              "docs/fast.md. Options given explicitly override it",
    "tta": "test-time augmentation for the final test: none | flip | flip-translate (6 views)",
}


def _base_type(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return args[0]
    return tp


def parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(v.lower(), v)


def _float_or_auto(v: str):
    return "auto" if v.strip().lower() == "auto" else float(v)


_float_or_auto.__name__ = "float or 'auto'"  # argparse names the type in its error message


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (so a new config field is a new flag), plus --config."""
    p.add_argument("--config", help="YAML config (a run's config.yaml re-runs it); flags override it")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("git_commit", "world_size"):  # filled in by the run, not set by users
            continue
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        h = HELP.get(f.name, f.name.replace("_", " "))
        if f.name == "model_args":
            p.add_argument("--model-arg", dest="model_args", action="append", metavar="KEY=VALUE", help=h)
        elif tp is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=h)
        elif typing.get_origin(tp) is list or tp is list:
            p.add_argument(flag, dest=f.name, default=None, help=h,
                           type=lambda s: [int(x) for x in s.split(",") if x.strip()])
        elif f.name == "lr":  # `--lr auto`: the command runs the LR range test first (tuning.resolve_auto_lr)
            p.add_argument(flag, dest=f.name, type=_float_or_auto, default=None,
                           help="learning rate, or auto: pick it with the LR range test (see `convclass lr-find`)")
        else:
            p.add_argument(flag, dest=f.name, type=tp, default=None, help=h)


def config_from_args(args) -> TrainConfig:
    cfg = load_config(args.config) if args.config else TrainConfig()
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}
    if "model_args" in over:
        kv = {}
        for item in over["model_args"]:
            if "=" not in item:
                raise ConvclassError(f"--model-arg expects KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            kv[k.strip()] = parse_value(v.strip())
        over["model_args"] = {**cfg.model_args, **kv}
    from ..training.recipes import with_recipe  # the recipe sits under the explicit flags
    return with_recipe(cfg, over)
