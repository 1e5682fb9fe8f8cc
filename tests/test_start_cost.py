"""A warm start touches each image file once: the folder scan reads link-ness from the directory listing, and the
decode cache's key (one stat per file) is computed once per split, not once per question asked of it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convclass.data import folder, prepare_data
from synth import write_class_folders


def _walk_reference(path: Path, roots: list[str]) -> list[str]:
    """The order the scan had before it used os.scandir: os.walk top-down, names sorted."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if folder.visible(d) and not os.path.islink(os.path.join(root, d)))
        out += [os.path.join(root, f) for f in sorted(files)
                if folder.visible(f) and not folder._link_inside(os.path.join(root, f), roots)]
    return out


def test_nested_scan_keeps_os_walk_order_and_link_rules(tmp_path):
    write_class_folders(tmp_path / "data" / "cat", per_class=3, classes=["a", "b"])
    cls = tmp_path / "data" / "cat"
    (cls / "a" / "deeper" / "z").mkdir(parents=True)
    (cls / "a" / "deeper" / "z" / "0.png").write_bytes((cls / "a" / "a_000.png").read_bytes())
    (cls / "a" / "m.png").write_bytes(b"not read here")
    (cls / "a" / ".hidden.png").write_bytes(b"x")
    os.symlink(cls / "b" / "b_000.png", cls / "a" / "copy.png")      # inside the dataset: left out, noted
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"x")
    os.symlink(outside, cls / "a" / "outside.png")                   # outside it: an image like any other
    os.symlink(cls / "b", cls / "a" / "linked_dir")                   # a folder link: not followed, noted
    roots = [os.path.realpath(tmp_path / "data")]
    notes: list[str] = []
    got = folder._files_under(cls / "a", notes, roots)
    assert got == _walk_reference(cls / "a", roots)
    assert str(cls / "a" / "outside.png") in got and str(cls / "a" / "copy.png") not in got
    assert got.index(str(cls / "a" / "m.png")) < got.index(str(cls / "a" / "deeper" / "z" / "0.png"))
    assert any("symlink(s)" in n for n in notes) and any("symlinked folder" in n for n in notes)


def test_warm_prepare_stats_each_file_at_most_once(tmp_path, monkeypatch):
    write_class_folders(tmp_path / "d" / "train", per_class=15)
    write_class_folders(tmp_path / "d" / "test", per_class=5)
    n_files, n_train = 60, 45
    kw = dict(data_root=str(tmp_path / "cache"), img_size=8, cache="auto", verbose=False)
    first = prepare_data(str(tmp_path / "d"), **kw)
    calls = {"n": 0}
    real_stat, real_lstat = os.stat, os.lstat

    def counting(real):
        def f(p, *a, **k):
            if str(p).endswith(".png"):
                calls["n"] += 1
            return real(p, *a, **k)
        return f

    monkeypatch.setattr(os, "stat", counting(real_stat))
    monkeypatch.setattr(os, "lstat", counting(real_lstat))
    again = prepare_data(str(tmp_path / "d"), **kw)
    # the cache key stats each file once; the header peek that picks the size opens (and so stats) up to 1,000
    # training files, here all 45 (the scan and the key once statted every file three times, 225 here)
    assert calls["n"] <= n_files + n_train, f"{calls['n']} stats of {n_files} image files on a warm start"
    assert np.array_equal(first.train.x.numpy(), again.train.x.numpy())
    assert first.train.paths == again.train.paths
