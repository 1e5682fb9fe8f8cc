"""Finding images and labels in a folder tree or a CSV: split folders, class folders, Tiny-ImageNet, CSV/TSV."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from ..safeio import Refused, read_regular
from .sources import DataOptions, DataSpec, LabeledSet
from .table import read_table

__all__ = ["scan_folder", "scan_csv", "SPLIT_ALIASES", "match_splits", "spec_from_classes", "visible"]

SPLIT_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing", "test_all"),
}
# Folders tools and OSes leave behind; never classes, never images.
IGNORED_DIRS = {".ipynb_checkpoints", "__macosx", "__pycache__", ".git", ".svn", ".ds_store"}


def visible(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in IGNORED_DIRS and not name.startswith("__")


def _subdirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and visible(p.name)), key=lambda p: p.name)


def _link_inside(p: str | Path, roots: list[str], inside: bool = True) -> str | None:
    """The target of symlink `p` when it is one of the folders being scanned, lies inside one (`inside`: its
    images would be listed twice) or holds one (a folder that contains itself); None for anything else."""
    if not os.path.islink(p):
        return None
    target = os.path.realpath(p)
    hit = any(os.path.commonpath([target, r]) in ((target, r) if inside else (target,)) for r in roots)
    return target if hit else None


def _files_under(path: Path, notes: list[str], roots: list[str]) -> list[str]:
    """Every visible file below `path`, recursively, in a stable order (os.walk's, top-down, names sorted), less
    symlinks into `roots`.

    Symlinked sub-folders are not entered (os.walk's default), so a link loop cannot recurse. Walked with
    os.scandir, whose entries know from the directory listing whether they are links: an lstat per file cost
    ~0.4 s of every start on CIFAR-10's 60,000 files."""
    out, twice, folders = [], [], []
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = sorted((e for e in it if visible(e.name)), key=lambda e: e.name)
        except OSError:  # an unreadable folder lists nothing, as in os.walk
            continue
        dirs = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                (folders if e.is_symlink() else dirs).append(e.path)
            elif e.is_symlink() and _link_inside(e.path, roots):
                twice.append(e.path)
            else:
                out.append(e.path)
        stack += reversed(dirs)  # depth first, the first name on top: os.walk's order
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


def _labeled(found: dict[str, list[str]], classes: list[str], split: str, root: Path | str) -> LabeledSet:
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


def match_splits(names: list[str]) -> dict[str, str]:
    """split (train, val, test) -> the folder name that holds it, by SPLIT_ALIASES, case-insensitive."""
    by_lower = {n.lower(): n for n in names}
    out = {}
    for split, aliases in SPLIT_ALIASES.items():
        hit = next((by_lower[a] for a in aliases if a in by_lower), None)
        if hit is not None:
            out[split] = hit
    return out


def _find_split_dirs(path: Path, notes: list[str]) -> dict[str, Path]:
    out = {split: path / name for split, name in match_splits([d.name for d in _subdirs(path)]).items()}
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
        found = {split: (d.name, _class_folders(d, notes, roots)) for split, d in splits.items()}
    else:
        found = {"": ("", _class_folders(path, notes, [os.path.realpath(path)]))}
    return spec_from_classes(path.name, str(path), found, notes)


def spec_from_classes(name: str, where: str, found: dict[str, tuple[str, dict[str, list[str]]]],
                      notes: list[str]) -> DataSpec:
    """The layout rules, for a folder tree or an archive (data/archive.py): `found` maps each split (train, val,
    test; "" when there are no split folders) to (its folder's name, class -> image paths); `where` names the
    dataset's root in errors."""
    if "" in found:
        classes_found = found[""][1]
        if not classes_found:
            raise ConvclassError(f"{where} holds no images in class sub-folders; expected {where}/<class>/<image> "
                                 f"or {where}/train/<class>/<image>")
        if len(classes_found) < 2:
            raise ConvclassError(f"{where} has only one class ({next(iter(classes_found))}); a classifier needs at "
                                 "least two class sub-folders")
        classes = sorted(classes_found)
        return DataSpec(name=name, classes=classes, train=_labeled(classes_found, classes, "", where), notes=notes)
    folder, train_found = found["train"]
    if not train_found:
        raise ConvclassError(f"{where}/{folder} has no class sub-folders with images; expected train/<class>/<image>")
    classes = sorted(train_found)
    spec = DataSpec(name=name, classes=classes, train=_labeled(train_found, classes, folder, where), notes=notes)
    for split in ("val", "test"):
        folder, split_found = found.get(split, ("", {}))
        if split_found:
            setattr(spec, split, _labeled(split_found, classes, folder, where))
    return spec


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
