"""A CSV/TSV of images and labels, in the shapes datasets ship them: `,` `;` tab or `|` between fields, a header
row or none, the path and label columns found by name (or chosen), bare file names or ids without extension under
an image folder beside the file, labels as names or integers.

The file is untrusted: it is read whole only if it is a regular file under the per-file size limit (safeio), no
field may exceed csv's 128 K characters, and a cell is refused (one line, naming the line) when it holds a NUL or
is too long to be a file name or class. As with a plain `path,label` file, relative names are under the image
root and absolute ones (or `..`) name files elsewhere: the CSV's author picks which files are read, as a symlink in
a class folder does; each is still opened only as a bounded regular file.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np

from ..checks import MAX_CLASSES, MAX_TEXT
from ..errors import ConvclassError
from ..safeio import Refused, read_regular
from .multilabel import multi_hot, one_hot_columns, read_label_sets
from .sources import DataOptions, DataSpec, LabeledSet

__all__ = ["Files", "read_table", "PATH_NAMES", "LABEL_NAMES", "GROUP_NAMES"]

# Header names, in order of preference (`image_path` over `id` when both are there); compared lower-case with
# spaces and dashes as underscores, so `ClassId`, `Image ID` and `file-name` match.
PATH_NAMES = ("path", "image_path", "img_path", "filepath", "file_path", "filename", "file_name", "file", "image",
              "img", "image_name", "img_name", "image_file", "image_id", "img_id", "id", "name")
LABEL_NAMES = ("label", "labels", "class", "class_id", "classid", "class_name", "classname", "category",
               "category_id", "target", "y", "breed", "species", "diagnosis", "level")
GROUP_NAMES = ("group", "group_id", "subject", "subject_id", "patient", "patient_id", "video", "video_id")
DELIMITERS = ",;\t|"
PROBE_ROWS = 20        # rows whose files are looked up to find the image folder and extension
GUESS_EXTS = ("", ".jpg", ".png", ".jpeg", ".JPG", ".JPEG", ".PNG", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
MAX_PATH = 4096        # characters in one path cell (PATH_MAX on Linux)
_COLUMN_FLAGS = "--path-column/--label-column NAME or 0-based INDEX"
_EMPTY_FLAGS = "--task multi when an image may have no label, or --label-column"


def _norm(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


class Files:
    """What reading a table looks at: the file system. archive.py answers the same for a table inside an archive."""

    def read(self, path: Path) -> bytes:
        return read_regular(path)

    def exists(self, path: str) -> bool:
        return self.is_file(Path(path)) or self.is_dir(Path(path))

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def is_file(self, path: Path) -> bool:
        return path.is_file()


def _text(path: Path, files: Files) -> str:
    try:
        data = files.read(path)
    except Refused as e:
        raise ConvclassError(f"cannot read {path}: {e}") from None
    try:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode text" export: UTF-16 with a BOM
            return data.decode("utf-16")
        return data.decode("utf-8-sig")  # -sig: a BOM would otherwise stick to the first column's name
    except UnicodeDecodeError as e:
        raise ConvclassError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 (CSV UTF-8)") from None


def _delimiter(text: str) -> str:
    """csv.Sniffer's choice among DELIMITERS on the first lines when the first line holds it; else the one found
    the same number of times on each of those lines (most often), else the one most frequent on the first."""
    lines = [ln for ln in text[:8192].splitlines()[:20] if ln.strip() and not ln.startswith("#")]
    if len(lines) > 1 and len(text) > 8192:
        lines = lines[:-1]  # the sample may end inside a line
    if not lines:
        return ","
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
        if found in lines[0]:
            return found
    except csv.Error:
        pass
    counts = {d: [ln.count(d) for ln in lines] for d in DELIMITERS}
    steady = [d for d, c in counts.items() if c[0] > 0 and len(set(c)) == 1]
    return max(steady or DELIMITERS, key=lambda d: counts[d][0]) if any(c[0] for c in counts.values()) else ","


def _rows(path: Path, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of every row that is neither blank nor a `#` comment."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out = []
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells) and not cells[0].startswith("#"):
                out.append((reader.line_num, cells))
    except csv.Error as e:  # a field over csv's 128 K characters, an unterminated quote at the end
        raise ConvclassError(f"{path} line {reader.line_num}: {e}; is it a CSV of image paths and labels?") from None
    return out


def _column(spec, header: list[str] | None, ncols: int, flag: str, where: str) -> int:
    """The 0-based index of a column given by name or index (an int, or text of digits that names no column)."""
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise ConvclassError(f"{flag} must be a column name or a 0-based index, not {spec!r}")
    if isinstance(spec, str) and header is not None:
        names = [_norm(h) for h in header]
        if _norm(spec) in names:
            return names.index(_norm(spec))
    if isinstance(spec, str) and not spec.strip().isdigit():
        if header is None:
            raise ConvclassError(f"{where} has no header row, so {flag} {spec!r} names no column; pass a 0-based "
                                 f"index (it has {ncols} columns)")
        raise ConvclassError(f"{where} has no column {spec!r}; its columns are {', '.join(header)}")
    index = int(spec)
    if not 0 <= index < ncols:
        raise ConvclassError(f"{flag} {index} is not a column of {where} (0-based, it has {ncols} columns)")
    return index


class _Table:
    """The rows of one file and the columns picked for paths, labels and groups."""

    def __init__(self, path: Path, rows: list[tuple[int, list[str]]], delimiter: str, opts: DataOptions,
                 files: Files):
        self.path, self.delimiter, self.task = path, delimiter, opts.task or "auto"
        first = rows[0][1]
        given = {_norm(v) for v in (opts.path_column, opts.label_column, opts.group_column)
                 if isinstance(v, str) and not v.strip().isdigit()}
        known = set(PATH_NAMES) | set(LABEL_NAMES) | set(GROUP_NAMES) | given
        self.header = first if {_norm(c) for c in first} & known and not files.is_file(path.parent / first[0]) else None
        self.body = rows[1:] if self.header else rows
        ncols = len(first)
        self.pcol = self._pick(opts.path_column, PATH_NAMES, "--path-column", ncols, 0)
        self.onehot = []  # one-hot label columns, when no column is named (or given) as the label one
        if self.header and opts.label_column is None and opts.task != "single" and not self._named(LABEL_NAMES):
            taken = {self.pcol} | self._named(GROUP_NAMES)
            self.onehot = one_hot_columns(self.header, [r[1] for r in self.body], taken)
        self.lcol = self.onehot[0] if self.onehot else self._pick(opts.label_column, LABEL_NAMES, "--label-column",
                                                                  ncols, 1 if self.pcol == 0 else 0)
        if self.lcol == self.pcol:
            raise self.error(None, f"the path and label columns are both column {self.pcol}")
        self.gcol = None
        if opts.group_column is not None or self.header:
            self.gcol = self._pick(opts.group_column, GROUP_NAMES, "--group-column", ncols, None)

    def _named(self, names: tuple[str, ...]) -> set[int]:
        return {i for i, h in enumerate(self.header or []) if _norm(h) in names}

    def _pick(self, spec, names: tuple[str, ...], flag: str, ncols: int, default: int | None) -> int | None:
        if spec is not None:
            return _column(spec, self.header, ncols, flag, str(self.path))
        if self.header is None:
            return default
        normed = [_norm(h) for h in self.header]
        taken = {getattr(self, "pcol", None), getattr(self, "lcol", None)}
        found = next((normed.index(n) for n in names if n in normed and normed.index(n) not in taken), None)
        if found is None and default is not None:
            what = "image path" if flag == "--path-column" else "label"
            raise self.error(None, f"no {what} column among its header names", flag=flag)
        return found

    def columns(self) -> str:
        if self.header is None:
            return f"{len(self.body[0][1]) if self.body else 0} columns, no header"
        return "columns " + ", ".join(f"{i}:{_short(h, 30)}" for i, h in enumerate(self.header))

    def error(self, row: tuple[int, list[str]] | None, problem: str, flag: str = _COLUMN_FLAGS) -> ConvclassError:
        where = f"{self.path} line {row[0]}" if row else str(self.path)
        shown = f" in {_short(self.delimiter.join(row[1]))!r}" if row else ""
        return ConvclassError(f"{where}: {problem}{shown} ({self.columns()}); pass {flag}")

    def cells(self) -> tuple[list[str], list[str], list[str] | None]:
        """(paths as written, labels, groups or None), each cell checked."""
        need = max(c for c in (self.pcol, self.lcol, self.gcol, *self.onehot) if c is not None)
        names, labels, groups = [], [], []
        for row in self.body:
            cells = row[1]
            if len(cells) <= need:
                raise self.error(row, f"{len(cells)} field(s) where column {need} is needed")
            name, label = cells[self.pcol], cells[self.lcol]
            if self.onehot:  # the names of the columns holding a 1, as a `|`-separated multi-label cell
                label = "|".join(self.header[c] for c in self.onehot if cells[c].startswith("1"))
            if not name or "\0" in name or len(name) > MAX_PATH:
                raise self.error(row, "no usable image path (empty, a NUL byte, or over 4096 characters)")
            if not label and self.task == "single":
                raise self.error(row, "no usable label (empty)", flag=_EMPTY_FLAGS)
            if len(label) > MAX_TEXT:
                raise self.error(row, f"no usable label (empty or over {MAX_TEXT} characters)")
            names.append(name)
            labels.append(label)
            if self.gcol is not None:
                groups.append(cells[self.gcol])
        return names, labels, groups if self.gcol is not None else None


def _extension(ext: str | None) -> str | None:
    if ext is None:
        return None
    if not isinstance(ext, str) or not re.fullmatch(r"\.?[A-Za-z0-9]{1,10}", ext):
        raise ConvclassError(f"--image-ext must be a file extension such as .jpg, not {ext!r}")
    return ext if ext.startswith(".") else "." + ext


def _join(root: Path, name: str, ext: str) -> str:
    full = name if os.path.isabs(name) else str(root / name)
    return full + ext if ext and not name.lower().endswith(ext.lower()) else full


def _image_folder(path: Path, names: list[str], opts: DataOptions, files: Files
                  ) -> tuple[Path, str, int, list[Path]]:
    """(root, extension to add, how many of the first PROBE_ROWS names it finds, the roots tried): the first pair
    that finds the
    most. Without --image-root the CSV's folder comes first, then <csv name>/, images/, train/, test/ and the like
    beside it (Kaggle's train.csv + train/ or train_images/, GTSRB's Test/); without --image-ext the names as
    written, then common image extensions."""
    base = path.parent
    if opts.image_root is not None:
        roots = [Path(str(opts.image_root)).expanduser()]
        if not files.is_dir(roots[0]):
            raise ConvclassError(f"--image-root {opts.image_root} is not a folder")
    else:
        near = (path.stem, f"{path.stem}_images", "images", "train", "train_images", "test", "test_images")
        near = [v for d in near for v in (d, d.capitalize(), d.upper())]
        roots = [base] + [base / d for d in dict.fromkeys(near) if files.is_dir(base / d)]
    ext = _extension(opts.image_ext)
    exts = (ext,) if ext else GUESS_EXTS
    probe = names[:PROBE_ROWS]
    best = (roots[0], exts[0], 0)
    for root in roots:
        for e in exts:
            hits = sum(files.exists(_join(root, n, e)) for n in probe)
            if hits > best[2]:
                best = (root, e, hits)
            if hits == len(probe):
                return (*best, roots)
    return (*best, roots)


def read_table(path: Path, opts: DataOptions | None = None, files: Files = Files()) -> DataSpec:
    """The labelled images a CSV/TSV lists (see the module docstring); all of them form the training split."""
    opts = opts or DataOptions()
    text = _text(path, files)
    delimiter = _delimiter(text)
    rows = _rows(path, text, delimiter)
    if not rows:
        raise ConvclassError(f"{path} has no rows of image paths and labels")
    table = _Table(path, rows, delimiter, opts, files)
    if not table.body:
        raise ConvclassError(f"{path} has a header ({', '.join(map(_short, table.header or []))}) but no rows")
    names, labels, groups = table.cells()
    root, ext, hits, roots = _image_folder(path, names, opts, files)
    if hits == 0:
        tried = "" if opts.image_ext else ", as written or with " + " ".join(e for e in GUESS_EXTS if e)
        raise table.error(table.body[0], f"none of the first {min(len(names), PROBE_ROWS)} images named in column "
                          f"{table.pcol} exist (looked under {', '.join(map(str, roots))}{tried})",
                          flag="--image-root DIR (the folder holding them), --image-ext .EXT or --path-column")
    notes = []
    guessed = opts.path_column is None and opts.label_column is None
    if guessed and table.header is None and not files.exists(_join(root, names[0], ext)) \
            and labels[0] not in labels[1:]:
        # a header of names we do not know (`photo,kind`): its "file" is missing and its "class" has no other row
        table.header, table.body = table.body[0][1], table.body[1:]
        names, labels, groups = names[1:], labels[1:], None if groups is None else groups[1:]
        notes.append(f"{path.name}: line {rows[0][0]} read as a header (its file does not exist)")
    sets, how = read_label_sets(labels, "multi" if table.onehot else table.task, "|" if table.onehot else None)
    if sets is None and "" in labels:
        raise table.error(table.body[labels.index("")], "no usable label (empty)", flag=_EMPTY_FLAGS)
    classes = sorted({c for s in sets for c in s}) if sets is not None else sorted(set(labels))
    if len(classes) > MAX_CLASSES:
        raise table.error(None, f"{len(classes)} distinct labels in column {table.lcol}, more than {MAX_CLASSES}",
                          flag="--label-column")
    if sets is None and len(classes) == len(labels) >= PROBE_ROWS:
        raise table.error(table.body[0], f"column {table.lcol} holds a different label on every row (ids?)",
                          flag="--label-column NAME or INDEX")
    if sets is not None and not classes:
        raise table.error(None, f"no image has a label in column {table.lcol}", flag="--label-column")
    if sets is not None:
        how = "one-hot columns" if table.onehot else how
        notes.append(f"{path.name}: multi-label, {len(classes)} labels ({how}; an image may have several or none); "
                     "--task single reads each cell as one class")
    index = {c: i for i, c in enumerate(classes)}
    if table.header and (table.pcol, table.lcol) != (0, 1) or root != path.parent or ext:
        shown = table.header or [str(i) for i in range(table.lcol + 1)]
        notes.append(f"{path.name}: image paths from column {shown[table.pcol]!r}, labels from {shown[table.lcol]!r}"
                     f", images under {root}" + (f", {ext} added to names without it" if ext else ""))
    return DataSpec(name=path.stem, classes=classes, notes=notes, train=LabeledSet(
        labels=multi_hot(sets, classes) if sets is not None else np.asarray([index[c] for c in labels], np.int64),
        paths=[_join(root, n, ext) for n in names],
        groups=None if groups is None else np.asarray(groups, dtype=object)))
