"""The search space of a sweep: which TrainConfig fields Optuna may choose, and from what.

Written in YAML (`tune --space space.yaml`) or as flags (`tune --param lr=1e-4:1e-1:log`); the same forms:

    lr: {low: 1.0e-4, high: 0.1, log: true}     # --param lr=1e-4:0.1:log      float range (log scale)
    batch_size: [32, 64, 128]                    # --param batch_size=32,64,128  one of these
    epochs: {low: 2, high: 6}                    # --param epochs=2:6            whole numbers when both ends are
    model_args.dropout: {low: 0.0, high: 0.5}    # --param model_args.dropout=0:0.5  a model knob
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..config import TrainConfig, read_yaml
from ..errors import ConvclassError

__all__ = ["Param", "parse_space_file", "parse_param_flag", "default_space", "suggest", "apply_params"]

_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_NOT_SEARCHABLE = {"model_args", "runs_dir", "name", "quiet", "git_commit", "data", "data_root", "device"}


@dataclass
class Param:
    name: str                   # TrainConfig field, or model_args.<knob>
    choices: list | None = None  # categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {self.choices}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]" + (" log" if self.log else "") + \
            (" int" if self.integer else "")


def _check_name(name: str) -> str:
    name = name.strip().replace("-", "_")
    if name.startswith("model_args."):
        if not name[len("model_args."):]:
            raise ConvclassError("search space: model_args.<knob> needs a knob name, e.g. model_args.width")
        return name
    if name not in _FIELDS or name in _NOT_SEARCHABLE:
        raise ConvclassError(f"search space: {name!r} is not a training option that can be searched; use a "
                             "`convclass train` option name (lr, batch_size, ...) or model_args.<knob>")
    return name


def _param(name: str, spec: Any) -> Param:
    name = _check_name(name)
    if isinstance(spec, list):
        if not spec:
            raise ConvclassError(f"search space: {name} has an empty list of choices")
        return Param(name, choices=spec)
    if isinstance(spec, dict):
        if "choices" in spec:
            return _param(name, list(spec["choices"]))
        if "low" not in spec or "high" not in spec:
            raise ConvclassError(f"search space: {name} needs low and high (or a list of choices), got {spec}")
        low, high = spec["low"], spec["high"]
        try:
            low, high = (float(low), float(high)) if not (isinstance(low, int) and isinstance(high, int)) \
                else (low, high)
        except (TypeError, ValueError):
            raise ConvclassError(f"search space: {name} low/high must be numbers, got {spec}") from None
        integer = spec.get("type") == "int" or (isinstance(low, int) and isinstance(high, int)
                                                 and spec.get("type") != "float")
        if not low < high:
            raise ConvclassError(f"search space: {name} needs low < high, got {low} and {high}")
        if spec.get("log") and low <= 0:
            raise ConvclassError(f"search space: {name} on a log scale needs low > 0, got {low}")
        return Param(name, low=low, high=high, log=bool(spec.get("log")), integer=integer)
    return Param(name, choices=[spec])  # a plain value: fixed for every trial


def parse_space_file(path: str | Path) -> list[Param]:
    path = Path(path)
    if not path.is_file():
        raise ConvclassError(f"--space {path}: no such file; pass a YAML mapping of option: range or choices")
    data = read_yaml(path, "--space file") or {}  # no aliases, tags, FIFOs or huge files
    if not isinstance(data, dict):
        raise ConvclassError(f"--space {path}: expected a mapping of option: range or list of choices")
    return [_param(k, v) for k, v in data.items()]


def _scalar(text: str):
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


def parse_param_flag(text: str) -> Param:
    """NAME=LOW:HIGH[:log|:int] or NAME=A,B,C (YAML scalars, so 1e-3, true and none work)."""
    if "=" not in text:
        raise ConvclassError(f"--param expects NAME=LOW:HIGH[:log] or NAME=A,B,C, got {text!r}")
    name, spec = text.split("=", 1)
    if ":" in spec:
        low, high, *flags = spec.split(":")
        bad = set(flags) - {"log", "int", "float"}
        if bad:
            raise ConvclassError(f"--param {text}: unknown range flag(s) {sorted(bad)}; use :log, :int or :float")
        d = {"low": _scalar(low), "high": _scalar(high), "log": "log" in flags}
        if "int" in flags or "float" in flags:
            d["type"] = "int" if "int" in flags else "float"
        return _param(name, d)
    values = [_scalar(v) for v in spec.split(",") if v.strip()]
    default = getattr(TrainConfig(), name.strip().replace("-", "_"), None)
    if isinstance(default, str):  # augment=none,flip-crop: "none" is a preset name here, not a missing value
        values = [v.strip() for v in spec.split(",") if v.strip()]
    return _param(name, values)


def default_space(model: str) -> list[Param]:
    """What `tune` searches when given no --space or --param: the settings users most often get wrong."""
    from ..models import model_entry
    space = [Param("lr", low=1e-4, high=1e-1, log=True),
             Param("weight_decay", low=1e-6, high=1e-2, log=True),
             Param("batch_size", choices=[32, 64, 128]),
             Param("optimizer", choices=["adam", "adamw", "sgd"]),
             Param("augment", choices=["none", "flip-crop"]),
             Param("label_smoothing", low=0.0, high=0.2)]
    knobs = inspect.signature(model_entry(model).fn).parameters
    if "width" in knobs:
        space.append(Param("model_args.width", choices=[0.5, 1.0, 2.0]))
    if "dropout" in knobs:
        space.append(Param("model_args.dropout", low=0.0, high=0.5))
    if "filters" in knobs:
        space.append(Param("model_args.filters", choices=[4, 8, 16, 32]))
    return space


def suggest(trial, space: list[Param]) -> dict[str, Any]:
    """Ask the Optuna trial for one value per parameter; returns {name: value} with dotted model_args names."""
    out = {}
    for p in space:
        if p.choices is not None:
            out[p.name] = trial.suggest_categorical(p.name, p.choices)
        elif p.integer:
            out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return out


def apply_params(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """cfg with the chosen values set; model_args.<knob> entries are merged into cfg.model_args."""
    knobs = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("model_args.")}
    plain = {k: v for k, v in params.items() if not k.startswith("model_args.")}
    return cfg.update(**plain, model_args={**cfg.model_args, **knobs})
