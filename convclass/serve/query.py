"""Query strings checked against the OpenAPI `parameters` the server publishes, so the two cannot drift.

Only what a schema allows gets through: integers are ASCII digits within minimum..maximum (`int()` alone
would take '١' or a 5,000-digit number and fail later), booleans one of a few spellings, and a parameter that
is unknown or given twice is refused rather than ignored, so a typo ('top_k=3') is not silently the default.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from .limits import RequestError

__all__ = ["query_checker"]

TRUE, FALSE = ("true", "1"), ("false", "0")
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII only; 18 digits fit in a 64-bit int, beyond is out of range


def _shown(raw: str) -> str:
    return repr(raw[:20] + ("…" if len(raw) > 20 else ""))


def _integer(name: str, schema: dict) -> Callable[[str], int]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    allowed = f"a whole number from {lo} to {hi}" if None not in (lo, hi) else "a whole number"

    def parse(raw: str) -> int:
        value = int(raw) if _INTEGER.fullmatch(raw) else None
        if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise RequestError(400, f"query parameter {name} must be {allowed}, not {_shown(raw)}")
        return value
    return parse


def _boolean(name: str, schema: dict) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        if raw.lower() in TRUE + FALSE:
            return raw.lower() in TRUE
        raise RequestError(400, f"query parameter {name} must be one of {', '.join(TRUE + FALSE)}, not {_shown(raw)}")
    return parse


_TYPES = {"integer": _integer, "boolean": _boolean}


def query_checker(parameters: list[dict]) -> Callable[[list[tuple[str, str]]], dict]:
    """A function from the query's (name, value) pairs to {name: value} with every schema default filled in;
    RequestError 400 for anything else. Raises KeyError at start-up for a schema type it cannot check."""
    specs = {p["name"]: p["schema"] for p in parameters if p["in"] == "query"}
    parsers = {name: _TYPES[schema["type"]](name, schema) for name, schema in specs.items()}
    takes = f"takes {', '.join(specs)}" if specs else "takes no query parameters"

    def check(pairs: list[tuple[str, str]]) -> dict:
        out = {name: schema.get("default") for name, schema in specs.items()}
        seen = set()
        for name, raw in pairs:
            if name not in parsers:
                raise RequestError(400, f"unknown query parameter {_shown(name)}; this endpoint {takes}")
            if name in seen:
                raise RequestError(400, f"query parameter {name} given more than once; give it once")
            seen.add(name)
            out[name] = parsers[name](raw)
        return out
    return check
