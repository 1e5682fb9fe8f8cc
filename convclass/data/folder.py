"""Finding images and labels in a folder tree or a CSV: split folders, class folders, Tiny-ImageNet, CSV/TSV."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from ..safeio import Refused, read_regular
from .sources import DataOptions, DataSpec, LabeledSet
from .table import read_table

__all__ = ["scan_folder", "scan_csv", "SPLIT_ALIASES"]

SPLIT_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing", "test_all"),
}
# Folders tools and OSes leave behind; never classes, never images.
IGNORED_DIRS = {".ipynb_checkpoints", "__macosx", "__pycache__", ".git", ".svn", ".ds_store"}


def _visible(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in IGNORED_DIRS and not name.startswith("__")


def _subdirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and _visible(p.name)), key=lambda p: p.name)


def _link_inside(p: str | Path, roots: list[str], inside: bool = True) -> str | None:
    """The target of symlink `p` when it is one of the folders being scanned, lies inside one (`inside`: its
    images would be listed twice) or holds one (a folder that contains itself); None for anything else."""
    if not os.path.islink(p):
        return None
    target = os.path.realpath(p)
    hit = any(os.path.commonpath([target, r]) in ((target, r) if inside else (target,)) for r in roots)
    return target if hit else None


def _files_under(path: Path, notes: list[str], roots: list[str]) -> list[str]:
    """Every visible file below `path`, recursively, in a stable order, less symlinks into `roots`.

    Symlinked sub-folders are not entered (os.walk's default), so a link loop cannot recurse."""
    out, twice, folders = [], [], []
    for root, dirs, files in os.walk(path):
        folders += [os.path.join(root, d) for d in dirs if _visible(d) and os.path.islink(os.path.join(root, d))]
        dirs[:] = sorted(d for d in dirs if _visible(d) and not os.path.islink(os.path.join(root, d)))
        for f in sorted(files):
            full = os.path.join(root, f)
            if _visible(f):
                (twice if _link_inside(full, roots) else out).append(full)
    if twice:
        notes.append(f"skipped {len(twice)} symlink(s) in {path} to files inside the dataset, e.g. {twice[0]} -> "
                     f"{os.path.realpath(twice[0])} (their images would count twice)")
    if folders:
        notes.append(f"did not follow {len(folders)} symlinked folder(s) in {path}, e.g. {folders[0]}")
    return out


def _class_folders(path: Path, notes: list[str], roots: list[str]) -> dict[str, list[str]]:
    found = {}
    for d in _subdirs(path):
        target = _link_inside(d, roots)
        if target:
            notes.append(f"skipped {d}: a symlink to {target}, inside the dataset (a class of copies)")
            continue
        files = _files_under(d, notes, roots)
        if files:
            found[d.name] = files
        else:
            notes.append(f"ignored empty class folder {d}")
    return found


def _labeled(found: dict[str, list[str]], classes: list[str], split: str, root: Path) -> LabeledSet:
    index = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(found) - set(index))
    if missing:
        raise ConvclassError(
            f"class(es) {', '.join(missing)} appear in {root}/{split} but not in the training split; "
            "add training images for them or remove them")
    paths, labels = [], []
    for c, files in found.items():
        paths += files
        labels += [index[c]] * len(files)
    return LabeledSet(labels=np.asarray(labels, dtype=np.int64), paths=paths)


def _find_split_dirs(path: Path, notes: list[str]) -> dict[str, Path]:
    by_lower = {d.name.lower(): d for d in _subdirs(path)}
    out = {}
    for split, aliases in SPLIT_ALIASES.items():
        for a in aliases:
            if a in by_lower:
                out[split] = by_lower[a]
                break
    for split, d in list(out.items()):  # e.g. val -> train (a copy), or train -> the dataset itself (a loop)
        others = [os.path.realpath(o) for s, o in out.items() if s != split]
        target = _link_inside(d, others) or _link_inside(d, [os.path.realpath(path)], inside=False)
        if target:
            notes.append(f"skipped {d}: a symlink to {target}, inside the dataset")
            del out[split]
    return out


def scan_folder(path: str | Path) -> DataSpec:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConvclassError(f"data folder {path} does not exist")
    if (path / "wnids.txt").exists() and (path / "val" / "val_annotations.txt").exists():
        return _scan_tiny_imagenet(path)
    notes: list[str] = []
    splits = _find_split_dirs(path, notes)
    if "train" in splits:
        roots = [os.path.realpath(d) for d in splits.values()]
        train_found = _class_folders(splits["train"], notes, roots)
        if not train_found:
            raise ConvclassError(f"{splits['train']} has no class sub-folders with images; "
                                 "expected train/<class>/<image>")
        classes = sorted(train_found)
        spec = DataSpec(name=path.name, classes=classes,
                        train=_labeled(train_found, classes, splits["train"].name, path), notes=notes)
        for split in ("val", "test"):
            if split in splits:
                found = _class_folders(splits[split], notes, roots)
                if found:
                    setattr(spec, split, _labeled(found, classes, splits[split].name, path))
        return spec
    found = _class_folders(path, notes, [os.path.realpath(path)])
    if not found:
        raise ConvclassError(f"{path} holds no images in class sub-folders; expected {path}/<class>/<image> "
                             f"or {path}/train/<class>/<image>")
    if len(found) < 2:
        raise ConvclassError(f"{path} has only one class ({next(iter(found))}); a classifier needs at least two "
                             "class sub-folders")
    classes = sorted(found)
    return DataSpec(name=path.name, classes=classes, train=_labeled(found, classes, "", path), notes=notes)


def scan_csv(path: str | Path, options: DataOptions | None = None) -> DataSpec:
    """A CSV/TSV of image paths and labels in any common shape (data/table.py); a plain `path,label` file (header
    optional, paths relative to the CSV's folder) reads as it always has."""
    return read_table(Path(path).expanduser(), options)


def _read_text(path: Path) -> str:
    """A list file of the dataset, read only if it is a regular file of at most 64 MB (a FIFO would hang)."""
    try:
        return read_regular(path, 2**26).decode("utf-8", "replace")
    except Refused as e:
        raise ConvclassError(f"cannot read {path}: {e}") from None


def _scan_tiny_imagenet(path: Path) -> DataSpec:
    """train/<wnid>/images/*.JPEG and val/images + val_annotations.txt; val serves as the labelled test split."""
    wnids = [w.strip() for w in _read_text(path / "wnids.txt").split() if w.strip()]
    words = {}
    if (path / "words.txt").exists():
        for line in _read_text(path / "words.txt").splitlines():
            k, _, v = line.partition("\t")
            words[k] = v.split(",")[0].strip()
    classes = sorted(wnids)
    index = {c: i for i, c in enumerate(classes)}
    notes: list[str] = []
    paths, labels = [], []
    roots = [os.path.realpath(path / "train"), os.path.realpath(path / "val")]
    for c in classes:
        folder = path / "train" / c / "images" if (path / "train" / c / "images").is_dir() else path / "train" / c
        files = _files_under(folder, notes, roots)
        files = [f for f in files if not f.endswith(".txt")]
        paths += files
        labels += [index[c]] * len(files)
    train = LabeledSet(labels=np.asarray(labels, dtype=np.int64), paths=paths)
    vpaths, vlabels = [], []
    for line in _read_text(path / "val" / "val_annotations.txt").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index and (path / "val" / "images" / parts[0]).exists():
            vpaths.append(str(path / "val" / "images" / parts[0]))
            vlabels.append(index[parts[1]])
    test = LabeledSet(labels=np.asarray(vlabels, dtype=np.int64), paths=vpaths)
    names = [words.get(c, c) for c in classes] if words else classes
    if len(set(names)) != len(names):
        names = classes
    notes.append("tiny-imagenet: the labelled val/ split is used as the test split")
    # the names from words.txt are already the classes (runs depend on it): no display names on top
    return DataSpec(name=path.name, classes=names, train=train, test=test, notes=notes, class_names=names)
