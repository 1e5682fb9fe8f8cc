"""Checking one option's value against its declaration in config.py: type, range, choices, model names.

The messages are the same wherever the value came from; only the name differs: a config file's key (img_size) in
YAML, the flag (--img-size) from flags and the Python API.
"""
from __future__ import annotations

import difflib
import math
import numbers
import re
import types
import typing
from typing import Any, Literal

from .errors import ConvclassError

__all__ = ["check_value", "choices_of", "did_you_mean", "flag_name"]

MAX_ITEMS = 1000        # entries in one list or mapping of a config
MAX_TEXT = 4096         # characters in one text value


def flag_name(key: str, meta: typing.Mapping) -> str:
    return meta.get("flag") or "--" + key.replace("_", "-")


def did_you_mean(value: Any, options: list) -> str:
    """" (did you mean X?)" for the option closest to `value` (case aside: adamW is adamw, not adam), or ""."""
    lower = {str(o).lower(): str(o) for o in options}
    close = difflib.get_close_matches(str(value).lower(), list(lower), n=1)
    return f" (did you mean {lower[close[0]]}?)" if close else ""


def choices_of(tp: Any) -> tuple:
    """The values of the Literal inside `tp` (e.g. Schedule, or Recipe | None); () when there is none."""
    for t in (tp, *typing.get_args(tp)):
        if typing.get_origin(t) is Literal:
            return typing.get_args(t)
    return ()


def check_value(key: str, value: Any, tp: Any, meta: typing.Mapping, where: str = "") -> Any:
    """`value` as the option `key` of type `tp` holds it, or a ConvclassError naming the option, what it must be
    and what it is. where: "config file PATH" for YAML (names the key), "" for flags and the API (names the flag)."""
    name = f"{where}: {key}" if where else flag_name(key, meta)
    ok, value, expected = _check(value, tp, meta)
    if ok:
        return value
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    hint = did_you_mean(value, list(choices_of(tp))) if choices_of(tp) else ""
    if meta.get("check") == "model" and isinstance(value, str):
        hint = did_you_mean(value, _models())
    if meta.get("unset") and type(None) in typing.get_args(tp):
        hint += f"; leave it out for {meta['unset']}"
    return _fail(f"{name} must be {expected}, not {shown}{hint}")


def _fail(message: str) -> typing.NoReturn:
    raise ConvclassError(message)


def _check(value: Any, tp: Any, meta: typing.Mapping) -> tuple[bool, Any, str]:
    """(ok, value normalised, what it must be)."""
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        if value is None and type(None) in args:
            return True, None, ""
        found = [_check(value, a, meta) for a in args if a is not type(None)]
        ok = [f for f in found if f[0]]
        return ok[0] if ok else (False, value, " or ".join(f[2] for f in found))
    if typing.get_origin(tp) is Literal:
        pattern, shown = meta.get("pattern") or (None, None)
        ok = (any(value == c and type(value) is type(c) for c in args)
              or (pattern is not None and isinstance(value, str) and re.fullmatch(pattern, value) is not None))
        listed = ", ".join(map(str, args)) + (f" or {shown}" if shown else "")
        return ok, value, ("one of " if len(args) > 1 else "") + listed
    lo, hi = meta.get("range") or (None, None)
    if tp in (int, float):
        return _number(value, tp, lo, hi, meta)
    if tp is bool:
        return isinstance(value, bool), value, "true or false"
    if tp is str:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT and "\0" not in value
        if ok and meta.get("check") == "model" and not value.startswith("timm:") and value not in _models():
            return False, value, "a model from `convclass models` or timm:NAME"
        return ok, value, f"text of at most {MAX_TEXT} characters"
    if typing.get_origin(tp) is list:
        expected = f"a list of at most {MAX_ITEMS} items, each {_describe(args[0], lo, hi, meta)}"
        if isinstance(value, str) and args[0] is int and re.fullmatch(r"\s*\d{1,9}(\s*,\s*\d{1,9})*\s*", value):
            value = [int(v) for v in value.split(",")]  # the flag's form ("1,3") from the Python API too
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            return False, value, expected
        items = [_check(v, args[0], meta) for v in value]
        bad = next((i for i in items if not i[0]), None)
        return (False, value, expected) if bad else (True, [i[1] for i in items], expected)
    # model_args: knob -> plain value
    ok = isinstance(value, dict) and len(value) <= MAX_ITEMS and all(
        isinstance(k, str) and len(k) <= 100 and _plain(v) for k, v in value.items())
    return ok, value, "a mapping of knob: number, text or true/false"


def _number(value: Any, tp: type, lo, hi, meta: typing.Mapping) -> tuple[bool, Any, str]:
    """A float may be written as text, as YAML 1.1 reads 1e-3; numpy numbers count (a tuning sampler's)."""
    expected = _describe(tp, lo, hi, meta)
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        return False, value, expected
    if tp is int:
        if not isinstance(value, numbers.Integral):
            return False, value, expected
        value = int(value)
    else:
        try:
            value = float(value)
        except (ValueError, OverflowError):  # OverflowError: an integer of 400 digits
            return False, value, expected
        if not math.isfinite(value):
            return False, value, expected
    low_open, high_open = meta.get("exclusive") == "lo", meta.get("exclusive") == "hi"
    if lo is not None and (value < lo or (low_open and value == lo)):
        bound = f"more than {lo}" if low_open else "0 or more" if lo == 0 else f"at least {lo}"
        return False, value, bound + (f" {meta['note']}" if meta.get("note") else "")
    if hi is not None and (value > hi or (high_open and value == hi)):
        bound = f"less than {_num(hi)}" if high_open else f"at most {_num(hi)}"
        return False, value, bound + (f" {meta['note']}" if meta.get("note") else "")
    return True, value, expected


def _describe(tp: Any, lo, hi, meta: typing.Mapping) -> str:
    kind = "a whole number" if tp is int else "a finite number" if tp is float else getattr(tp, "__name__", str(tp))
    if lo is None or tp not in (int, float):
        return kind
    if hi is None:
        return f"{kind} >= {lo}"
    top = f"up to (not including) {_num(hi)}" if meta.get("exclusive") == "hi" else f"to {_num(hi)}"
    return f"{kind} from {lo}{' (not included)' if meta.get('exclusive') == 'lo' else ''} {top}"


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _plain(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return v is None or isinstance(v, (bool, int)) or (isinstance(v, str) and len(v) <= MAX_TEXT)


def _models() -> list[str]:
    from .models import list_models  # the registry imports torch: only once a model name is checked
    return list_models()
