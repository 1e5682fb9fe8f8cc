"""Hugging Face `datasets` as --data hf:NAME_OR_PATH: a dataset saved with save_to_disk (DatasetDict or Dataset), a
local folder `datasets` can load (imagefolder, parquet, ...), or, online, a dataset name on the Hub.

Images are not copied out: each row travels as ARROW_FILE::COLUMN[ROW] (data/archive.py's container::member form)
and is read from the memory-mapped Arrow file when it is decoded, straight to the model's size, through the decode
cache, in the decode workers, like any image file. `datasets` is an optional dependency (pip install
'convclass[hf]'), imported only when such data is asked for."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from ..safeio import MAX_FILE_MB_ENV, Refused, max_file_bytes, read_regular
from .folder import match_splits
from .multilabel import multi_hot
from .sources import DataOptions, DataSpec, LabeledSet

__all__ = ["PREFIX", "load_hf", "read_rows"]

PREFIX = "hf:"
IMAGE_NAMES = ("image", "img", "pixel_values", "picture", "photo")
LABEL_NAMES = ("label", "labels", "fine_label", "target", "class", "category")
_ROW = re.compile(r"(.+)\[(\d+)\]", re.DOTALL)
_TABLES: dict[tuple, object] = {}
_KEEP = 8  # Arrow files whose mapping a process keeps open (a big set is split into a few hundred MB each)


def _datasets():
    try:
        import datasets
    except ImportError:
        raise ConvclassError("--data hf:... needs the `datasets` package: pip install 'convclass[hf]'") from None
    return datasets


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160]}" if text else type(e).__name__


def _load(source: str, data_root: str):
    """The DatasetDict or Dataset `source` names."""
    datasets = _datasets()
    cache = str(Path(data_root).expanduser() / "huggingface")
    p = Path(source).expanduser()
    try:
        if p.is_dir():
            if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
                return datasets.load_from_disk(str(p))
            return datasets.load_dataset(str(p), cache_dir=cache)  # imagefolder, parquet, ...: from the files
    except Exception as e:  # a folder datasets cannot read fails in many ways; each is the same to the user
        raise ConvclassError(f"cannot read the Hugging Face dataset in {p} ({_first_line(e)}); pass a folder "
                             "written by save_to_disk, or an imagefolder or parquet folder") from None
    if source.startswith((".", "/", "~")) or source.count("/") > 1:  # a path, not a Hub name (NAME or OWNER/NAME)
        raise ConvclassError(f"--data hf:{source}: no such folder")
    try:
        return datasets.load_dataset(source, cache_dir=cache)
    except ConnectionError as e:
        raise ConvclassError(f"--data hf:{source} needs the network to reach the Hugging Face Hub ({_first_line(e)});"
                             " offline, pass a local path: a dataset saved with save_to_disk, or an imagefolder or "
                             "parquet folder") from None
    except Exception as e:
        raise ConvclassError(f"cannot load {source!r} from the Hugging Face Hub ({_first_line(e)})") from None


def _splits(ds, source: str, chosen: str | None) -> dict:
    """{"train": Dataset, "val": ..., "test": ...} from the dataset's split names; `chosen`: the training split."""
    if not hasattr(ds, "keys"):  # one Dataset: the training split, val and test are carved from it
        return {"train": ds}
    names = list(ds.keys())
    by_role = {role: ds[name] for role, name in match_splits(names).items()}
    if chosen is not None:
        if chosen not in ds:
            raise ConvclassError(f"--hf-split {chosen}: {source} has the splits {', '.join(names)}")
        by_role["train"] = ds[chosen]
    elif "train" not in by_role:
        if len(names) != 1:
            raise ConvclassError(f"{source} has the splits {', '.join(names)} and none is called train; choose the "
                                 "one to train on with --hf-split NAME")
        by_role["train"] = ds[names[0]]
    return by_role


def _kind(feature) -> str:
    return type(feature).__name__


def _column(features, chosen: str | None, kind: str, names: tuple[str, ...], what: str, source: str) -> str:
    """The image or label column: `chosen`, else the first of type `kind`, else the first of a usual name."""
    flag = f"--hf-{what}-column"
    shown = ", ".join(f"{k} ({_kind(v)})" for k, v in features.items())
    if chosen is not None:
        if chosen not in features:
            raise ConvclassError(f"{flag} {chosen}: {source} has no such column; its columns: {shown}")
        return chosen
    typed = [k for k, v in features.items() if _kind(v) == kind]
    named = [k for n in names for k in features if k.lower() == n]
    if typed or named:
        return (typed or named)[0]
    raise ConvclassError(f"{source}: no {what} column found among {shown}; name it with {flag} COLUMN")


def _check_columns(features, image_col: str, label_col: str, source: str) -> None:
    f = features[image_col]
    if not (_kind(f) == "Image" or (_kind(f) == "Value" and getattr(f, "dtype", "") in ("binary", "large_binary"))):
        raise ConvclassError(f"{source}: column {image_col} holds {_kind(f)}, not encoded images; convclass reads "
                             "an Image column (or raw image bytes); choose another with --hf-image-column")
    f = features[label_col]
    if _kind(f) not in ("ClassLabel", "Value") and not _label_list(f):  # lists of anything but ClassLabels
        raise ConvclassError(f"{source}: column {label_col} holds {_kind(f)}, not one label per image; choose "
                             "another with --hf-label-column")


def _label_list(feature) -> bool:
    """Whether a column holds a list of ClassLabels per image: multi-label (data/multilabel.py)."""
    return _kind(feature) in ("List", "Sequence", "LargeList") and _kind(getattr(feature, "feature", None)) == \
        "ClassLabel"


def _multilabel(splits: dict, image_col: str, label_col: str, source: str) -> DataSpec:
    """Label rows from a list-of-ClassLabel column: its names become the labels, an empty list no label."""
    names = list(splits["train"].features[label_col].feature.names)
    out = {role: LabeledSet(labels=multi_hot([[names[v] for v in row if 0 <= v < len(names)]
                                              for row in d.data.column(label_col).to_pylist()], names),
                            paths=_rows(d, image_col, source)) for role, d in splits.items()}
    return DataSpec(name=Path(source.rstrip("/")).name or source, classes=names, train=out["train"],
                    val=out.get("val"), test=out.get("test"),
                    notes=[f"{source}: multi-label, {len(names)} labels from the list column {label_col}"])


def _arrow_files(ds, source: str) -> list[str]:
    files = [c["filename"] for c in ds.cache_files]
    if not files or getattr(ds, "_indices", None) is not None:
        raise ConvclassError(f"{source}: the dataset is not laid out in Arrow files on disk (an in-memory or "
                             "re-indexed dataset); save it with save_to_disk and pass that folder")
    return files


def _labels(ds, col: str) -> np.ndarray:
    return ds.data.column(col).to_numpy()


def _rows(ds, col: str, source: str) -> list[str]:
    """One ARROW_FILE::COLUMN[ROW] per row of `ds`, in its order."""
    import pyarrow as pa
    paths = []
    for f in _arrow_files(ds, source):
        with pa.memory_map(f) as src:
            n = pa.ipc.open_stream(src).read_all().num_rows
        paths += [f"{f}::{col}[{r}]" for r in range(n)]
    if len(paths) != len(ds):
        raise ConvclassError(f"{source}: its Arrow files hold {len(paths)} rows, the dataset {len(ds)}; save it "
                             "with save_to_disk and pass that folder")
    return paths


def load_hf(source: str, data_root: str = "~/.cache/convclass", options: DataOptions | None = None) -> DataSpec:
    """The splits of a Hugging Face dataset: images from the Image column, labels from the ClassLabel column
    (whose names become the classes), each found by type, else by a usual name, or chosen in `options`."""
    options = options or DataOptions()
    splits = _splits(_load(source, data_root), source, options.hf_split)
    features = splits["train"].features
    image_col = _column(features, options.hf_image_column, "Image", IMAGE_NAMES, "image", source)
    label_col = _column(features, options.hf_label_column, "ClassLabel", LABEL_NAMES, "label", source)
    _check_columns(features, image_col, label_col, source)
    if _label_list(features[label_col]):
        if options.task == "single":
            raise ConvclassError(f"{source}: column {label_col} holds a list of labels per image; drop --task "
                                 "single (it trains multi-label) or choose another with --hf-label-column")
        return _multilabel(splits, image_col, label_col, source)
    names = getattr(features[label_col], "names", None)
    notes: list[str] = []
    raw = {role: _labels(d, label_col) for role, d in splits.items()}
    if names is None:  # plain values: integers keep their order, anything else sorts as text
        values = np.unique(raw["train"])
        names = [str(v) for v in values]
    out = {}
    for role, d in splits.items():
        split_names = getattr(d.features.get(label_col), "names", None)
        text = [split_names[v] if split_names and v >= 0 else str(v) for v in raw[role].tolist()]
        keep = [i for i, v in enumerate(raw[role].tolist()) if not (split_names and v < 0)]
        if not keep and role != "train":  # the unlabelled test split of a competition: -1 everywhere
            notes.append(f"{source}: the {role} split has no labels; carved from the training split instead")
            continue
        if len(keep) < len(text):
            notes.append(f"{source}: skipped {len(text) - len(keep)} unlabelled row(s) of the {role} split")
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted({text[i] for i in keep} - set(index))
        if unknown:
            raise ConvclassError(f"{source}: label(s) {', '.join(unknown[:10])} of the {role} split are not in the "
                                 "training split")
        paths = _rows(d, image_col, source)
        out[role] = LabeledSet(labels=np.asarray([index[text[i]] for i in keep], dtype=np.int64),
                               paths=[paths[i] for i in keep])
    name = Path(source.rstrip("/")).name or source
    return DataSpec(name=name, classes=list(names), train=out["train"], val=out.get("val"), test=out.get("test"),
                    notes=notes)


def _table(path: str):
    import pyarrow as pa
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, os.getpid())
    if key not in _TABLES:
        while len(_TABLES) >= _KEEP:
            _TABLES.pop(next(iter(_TABLES)))
        with pa.memory_map(path) as src:  # zero-copy: the table's buffers stay in the mapping
            _TABLES[key] = pa.ipc.open_stream(src).read_all()
    return _TABLES[key]


def read_rows(container: str, items: list[tuple[int, str]], bad: list) -> Iterator[tuple[int, bytes]]:
    """(i, encoded image bytes) of each COLUMN[ROW] of the Arrow file `container` (archive.sources' reader)."""
    cap = max_file_bytes()
    try:
        table = _table(container)
    except (OSError, ValueError) as e:  # pyarrow's errors are OSError and ValueError subclasses
        bad += [(f"{container}::{m}", f"unreadable ({_first_line(e)})") for _, m in items]
        return
    for i, member in items:
        try:
            m = _ROW.fullmatch(member)
            if m is None or m[1] not in table.column_names or int(m[2]) >= table.num_rows:
                raise Refused("no such row")
            value = table.column(m[1])[int(m[2])].as_py()
            if isinstance(value, dict):  # an Image: its bytes, or the path of a local file (imagefolder)
                value = value.get("bytes") or (read_regular(value["path"]) if value.get("path") else None)
            if not isinstance(value, (bytes, bytearray)):
                raise Refused("no image in this row")
            if len(value) > cap:
                raise Refused(f"larger than the {cap / 2**20:.3g} MB limit per file (${MAX_FILE_MB_ENV} raises it)")
        except Refused as e:
            bad.append((f"{container}::{member}", str(e)))
            continue
        yield i, bytes(value)
