"""Which images belong together (frames of one object, photos of one patient), and splits that keep groups whole.

Images of one group in both the training and the test split make the test score optimistic: the model has seen
a near copy of the answer. A group comes from `--group-by REGEX` on each image's path, else from a CSV's group
column; a carved split or a cross-validation fold then takes whole groups, about the asked fraction of each class.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import regex  # `re` has no time limit: a pattern like (a+)+$ backtracks for hours on a hostile file name

from ..errors import ConvclassError
from .archive import SEP
from .multilabel import stratify_key
from .sources import DataSpec, LabeledSet

__all__ = ["compile_group_pattern", "groups_from_pattern", "relative_name", "assign_groups", "group_split",
           "with_groups", "data_folder"]

MAX_NAME = 1024       # characters of a path the pattern is tried on; longer names match no group
MATCH_BUDGET_S = 30.0  # all names together: a simple pattern takes ~1 s per million names
_EXAMPLE = r"e.g. --group-by '^(\w+)_' puts obj12_003.jpg in group obj12"


def compile_group_pattern(pattern: str) -> regex.Pattern:
    """The compiled --group-by pattern, or a one-line error saying what is wrong with it."""
    try:
        return regex.compile(pattern)
    except (regex.error, ValueError, TypeError, OverflowError, RecursionError) as e:
        raise ConvclassError(f"--group-by {pattern!r} is not a regular expression ({str(e).splitlines()[0]}); "
                             f"{_EXAMPLE}") from None


def data_folder(data: str) -> str:
    """The folder image paths are shown and matched relative to: --data's, or the folder of its CSV or archive."""
    p = Path(data).expanduser()
    return str(p if p.is_dir() else p.parent)


def relative_name(path: str, root: str | None) -> str:
    """The name a pattern sees: an archive member's name, else the path below the data folder `root`, with `/`."""
    if SEP in path:
        return path.split(SEP, 1)[1]
    if root:
        for prefix in (os.path.join(root, ""), os.path.join(os.path.abspath(root), "")):
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
    return path.replace(os.sep, "/")


def groups_from_pattern(paths: list[str], root: str | None, pattern: str) -> tuple[np.ndarray, list[str]]:
    """(group of each image, the paths that matched no group). The pattern is searched in the path below `root`
    (cat/obj12_003.jpg), then in the file name alone (obj12_003.jpg), so `^` anchors either; the group is its
    first capture group, or the whole match. An image that matches nothing is a group of its own."""
    rx = compile_group_pattern(pattern)
    deadline = time.monotonic() + MATCH_BUDGET_S
    out = np.empty(len(paths), dtype=object)
    unmatched = []
    for i, p in enumerate(paths):
        rel = relative_name(p, root)
        key = None
        for name in dict.fromkeys((rel, rel.rsplit("/", 1)[-1])):
            if len(name) > MAX_NAME:
                continue
            try:
                m = rx.search(name, timeout=max(deadline - time.monotonic(), 1e-3))
            except TimeoutError:
                raise ConvclassError(f"--group-by {pattern!r} took over {MATCH_BUDGET_S:g} s on {i + 1} of "
                                     f"{len(paths)} file names (nested repetition such as (a+)+ backtracks); "
                                     f"simplify it, {_EXAMPLE}") from None
            if m is not None:
                key = m.group(1) if rx.groups and m.group(1) is not None else m.group(0)
                break
        if key is None:
            unmatched.append(p)
            key = "\0" + p  # a group of its own (a file listed twice: one); no matched text holds a NUL
        out[i] = key
    return out, unmatched


def assign_groups(labels: np.ndarray, groups: np.ndarray, weights, seed: int) -> np.ndarray:
    """Which part (0 .. len(weights) - 1) each image goes to, whole groups at a time, each part getting about
    weights[k] / sum(weights) of every class.

    Greedy, largest groups first (ties in seeded random order): a group goes to the part whose per-class count
    lags its share the most, weighted by the group's own class counts. That is the step that most reduces the
    squared distance of every part's class counts from their shares. O(groups x classes in a group x parts)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    _, gid = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups, n_classes = int(gid.max()) + 1, int(labels.max()) + 1
    # each group's classes and counts: (group, class) pairs sorted by group, one slice per group
    pairs, counts = np.unique(gid * n_classes + labels, return_counts=True)
    starts = np.searchsorted(pairs // n_classes, np.arange(n_groups + 1))
    sizes = np.bincount(gid, minlength=n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    # plain Python below: a group spans a class or two, where numpy's per-call cost would be most of the time
    cls, cnt, bounds, share = (pairs % n_classes).tolist(), counts.tolist(), starts.tolist(), w.tolist()
    held = [[0] * n_classes for _ in share]
    seen = [0] * n_classes
    part = np.zeros(n_groups, dtype=np.int64)
    for g in order.tolist():
        members = range(bounds[g], bounds[g + 1])
        for j in members:
            seen[cls[j]] += cnt[j]
        # how far each part is behind its share of these classes, weighted by the group's counts
        k = max(range(len(share)), key=lambda k: sum(cnt[j] * (share[k] * seen[cls[j]] - held[k][cls[j]])
                                                     for j in members))
        for j in members:
            held[k][cls[j]] += cnt[j]
        part[g] = k
    return part[gid]


def group_split(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) like data.prepare.stratified_split, with every group on one side. Each side gets
    at least one group when there are two or more; one group only is an error (nothing could be held out)."""
    part = assign_groups(stratify_key(labels), groups, (1.0 - fraction, fraction), seed)
    keys = np.asarray(groups).astype(str)
    if len(np.unique(keys)) < 2:
        raise ConvclassError(f"all {len(labels)} images are in one group, so no validation or test split can be "
                             "held out; check --group-by or the group column, or give the data train/ and test/ "
                             "folders")
    for side in (0, 1):
        if not (part == side).any():  # a tiny fraction of few groups: move the smallest group across
            names, sizes = np.unique(keys, return_counts=True)
            part[keys == names[np.argmin(sizes)]] = side
    return np.flatnonzero(part == 0), np.flatnonzero(part == 1)


def with_groups(spec: DataSpec, data: str, pattern: str | None, notes: list[str]) -> DataSpec:
    """`spec` with each split's groups from `pattern` (--group-by) when given, else as read (a CSV's group
    column); a line for `notes` says how the images were grouped."""
    if pattern is None:
        if spec.train.groups is not None:
            notes.append(f"groups from the CSV's group column: {_sizes(spec.train.groups)}; carved splits keep "
                         "each group whole")
        return spec
    root = data_folder(data)
    found, unmatched = {}, []
    for name in ("train", "val", "test"):
        s = getattr(spec, name)
        if s is None:
            continue
        if s.paths is None:
            raise ConvclassError(f"--group-by needs image files to match, and {data} is a set of arrays; give a "
                                 "folder, CSV or archive, or leave --group-by out")
        groups, missed = groups_from_pattern(s.paths, root, pattern)
        found[name] = LabeledSet(labels=s.labels, arrays=s.arrays, paths=s.paths, groups=groups)
        unmatched += missed
    note = f"--group-by {pattern}: {_sizes(found['train'].groups)}; carved splits keep each group whole"
    if unmatched:
        note += (f"; {len(unmatched)} image(s) matched no group and are each a group of their own, e.g. "
                 f"{relative_name(unmatched[0], root)}")
    notes.append(note)
    return dataclasses.replace(spec, **found)


def _sizes(groups: np.ndarray) -> str:
    _, n = np.unique(np.asarray(groups).astype(str), return_counts=True)
    return f"{len(n)} groups of {n.min()}" + (f" to {n.max()} images" if n.max() > n.min() else " images each")
