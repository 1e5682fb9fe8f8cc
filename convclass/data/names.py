"""Display names of the classes (`n01440764` -> "tench", `16` -> "priority road"), for reports, predictions and
the web page; `classes` stay the keys labels are matched by.

Read from the file --class-names gives, else from class_names.json, classes.txt or words.txt in the data folder
(or beside a CSV). A text file holds one name per line in class order (line k names integer label k), or
`key name` lines (tab- or space-separated; words.txt's `wnid<TAB>tench, Tinca tinca` gives "tench"); a JSON file
an object of key: name (or key: [wnid, name], Keras' imagenet_class_index.json) or a list of names.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checks import MAX_TEXT
from ..errors import ConvclassError
from ..safeio import Refused, read_regular
from .sources import DataSpec

__all__ = ["NAME_FILES", "class_key", "read_class_names", "with_class_names"]

NAME_FILES = ("class_names.json", "classes.txt", "words.txt")
MAX_NAMES_BYTES = 2**26  # ImageNet's words.txt (82,115 synsets) is 2.6 MB


def class_key(k: str) -> str:
    """Integer keys compare by value: `16` names the class of folder `00016` (isdecimal: int() refuses `²`,
    which isdigit() accepts)."""
    k = k.strip()
    return str(int(k)) if k.isdecimal() else k


def _parse(path: Path) -> tuple[dict[str, str], list[str]]:
    """(key -> name, the names in file order)."""
    try:
        text = read_regular(path, MAX_NAMES_BYTES).decode("utf-8-sig")
    except Refused as e:
        raise ConvclassError(f"cannot read {path}: {e}") from None
    except UnicodeDecodeError:
        raise ConvclassError(f"{path} is not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ConvclassError(f"{path} is not valid JSON ({str(e)[:80]})") from None
        if isinstance(obj, list):
            return {}, [v if isinstance(v, str) else "" for v in obj]
        if not isinstance(obj, dict):
            raise ConvclassError(f"{path} must hold a JSON object of class: name or a list of names")
        pairs = {}
        for k, v in obj.items():
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v):
                wnid, v = v  # Keras: {"0": ["n01440764", "tench"]} names both keys
                pairs[class_key(wnid)] = v
            if isinstance(v, str):
                pairs.setdefault(class_key(k), v)
        return pairs, []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    pairs = {}
    for ln in lines:
        k, _, v = ln.partition("\t") if "\t" in ln else ln.partition(" ")
        pairs.setdefault(class_key(k), v.split(",")[0].strip())
    return pairs, lines


def read_class_names(path: Path, classes: list[str]) -> list[str]:
    """One display name per class of `classes` from the file at `path` (a class it does not name keeps its key)."""
    pairs, lines = _parse(path)
    keys = [class_key(c) for c in classes]
    if any(pairs.get(k) for k in keys):
        names = [pairs.get(k) or c for k, c in zip(keys, classes)]
    elif lines and all(k.isdecimal() for k in keys) and max(int(k) for k in keys) < len(lines):
        names = [lines[int(k)] for k in keys]
    elif len(lines) == len(classes):
        names = lines
    else:
        raise ConvclassError(
            f"{path} names none of the {len(classes)} classes (e.g. {classes[0]!r}) and has {len(lines)} names, "
            "not one per class; write one name per line in class order, `key name` lines, or a JSON object of "
            "key: name")
    return [n if 0 < len(n) <= MAX_TEXT else c for n, c in zip(names, classes)]


def with_class_names(spec: DataSpec, data: str, given: str | None) -> DataSpec:
    """`spec` with `class_names` from `given` (--class-names) or a NAME_FILES file in the data folder or beside the
    CSV `data`; a file found there that does not fit is left out with a note, one given is an error."""
    if given:
        path = Path(str(given)).expanduser()
        if not path.is_file():
            raise ConvclassError(f"--class-names {given}: no such file")
        spec.class_names = read_class_names(path, spec.classes)
    elif spec.class_names is None:
        where = Path(data).expanduser()
        folder = where if where.is_dir() else where.parent if where.is_file() else None
        found = [folder / n for n in NAME_FILES if folder is not None and (folder / n).is_file()]
        if found:
            try:
                spec.class_names = read_class_names(found[0], spec.classes)
                spec.notes.append(f"class display names from {found[0]}")
            except ConvclassError as e:
                spec.notes.append(f"left out {found[0].name}: {e}")
    if spec.class_names == spec.classes:
        spec.class_names = None
    return spec
