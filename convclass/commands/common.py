"""The training flags, generated from TrainConfig (config.py): train, cv, lr-find and tune share them.

A flag's value is converted when it can be and otherwise passed on as typed, so that one check (config_check.py)
judges it, with the same message a config file or the Python API gets.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from ..config import TrainConfig, check_values, flag_name, load_config
from ..config_check import choices_of
from ..errors import ConvclassError

__all__ = ["add_config_flags", "config_from_args", "flag_overrides"]


def parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(v.lower(), v)


def _lenient(cast):
    """cast(text), or the text itself when it does not convert: the config check then names the flag and range."""
    def convert(text: str):
        try:
            return cast(text)
        except ValueError:
            return text
    return convert


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _value_type(tp):
    """The converter for a flag of field type `tp` (None, Optional and Literal unwrapped)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        numbers = [a for a in args if a in (int, float)]
        if numbers and choices_of(tp):  # --lr 0.1 | auto
            return _lenient(lambda s: s.strip().lower() if s.strip().lower() in choices_of(tp) else numbers[0](s))
        return _value_type(args[0])
    if typing.get_origin(tp) is typing.Literal:
        return _lenient(type(args[0]))
    if typing.get_origin(tp) is list:
        return _lenient(_int_list)
    return _lenient(tp) if tp in (int, float) else str


def _shown_default(f: dataclasses.Field) -> str:
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    if default is None or default in ([], {}):
        return f.metadata.get("unset") or "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def _metavar(f: dataclasses.Field, tp) -> str | None:
    if f.metadata.get("metavar"):
        return f.metadata["metavar"]
    choices = choices_of(tp)
    if choices and not any(a in (int, float) for a in typing.get_args(tp)):
        return "{" + ",".join(map(str, choices)) + "}"
    return None  # argparse's own: the flag in capitals (--data DATA)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (a new config field is a new flag), its help and default from the field."""
    p.add_argument("--config", metavar="YAML", help="YAML config (a run's config.yaml re-runs it); flags override "
                                                    "it (default: none)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("flag", "") is None:  # filled in by the run, not set by users
            continue
        tp = hints[f.name]
        # argparse expands % in help; a default of 91 % must print as itself
        h = f"{f.metadata.get('help', '')} (default: {_shown_default(f)})".replace("%", "%%")
        kw = dict(dest=f.name, default=None, help=h)
        if tp is bool:
            p.add_argument(flag_name(f.name, f.metadata), action=argparse.BooleanOptionalAction, **kw)
        elif f.name == "model_args":
            p.add_argument(flag_name(f.name, f.metadata), action="append", metavar=f.metadata["metavar"], **kw)
        else:
            p.add_argument(flag_name(f.name, f.metadata), type=_value_type(tp), metavar=_metavar(f, tp), **kw)


def flag_overrides(args) -> dict:
    """The training options given as flags, each checked (before any data or model is touched)."""
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}
    if "model_args" in over:
        kv = {}
        for item in over["model_args"]:
            if "=" not in item:
                raise ConvclassError(f"--model-arg expects KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            kv[k.strip()] = parse_value(v.strip())
        over["model_args"] = kv
    return check_values(over)


def config_from_args(args) -> TrainConfig:
    over = flag_overrides(args)
    cfg = load_config(args.config) if args.config else TrainConfig()
    if "model_args" in over:
        over["model_args"] = {**cfg.model_args, **over["model_args"]}
    from ..training.recipes import with_recipe  # the recipe sits under the explicit flags
    return with_recipe(cfg, over)
