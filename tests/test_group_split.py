"""Related images (data/groups.py, data/leakage.py): --group-by and a CSV group column keep each group inside one
carved split and one cross-validation fold; carving a folder of near-identical runs image by image warns."""
from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error

from convclass.data import prepare_data
from convclass.data import groups as groups_module
from convclass.data.sources import DataOptions
from convclass.errors import ConvclassError
from convclass.pipeline.crossval import fold_indices
from synth import write_class_folders

LEAK = re.compile(r"(\d+) test images? ha(?:s|ve) a near-duplicate in the training split \(e\.g\. (\S+) ~ (\S+)\): "
                  r"the carved test accuracy will be optimistic; keep related images together with --group-by")


def _runs(root: Path, groups: int = 8, frames: int = 5, size: int = 24) -> dict[str, str]:
    """root/<class>/<class>obj<g>_<f>.png: per group one random image, each frame that image with one pixel
    changed (a burst of one object); returns {file: group}."""
    rng = np.random.default_rng(0)
    out = {}
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for g in range(groups):
            base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            for f in range(frames):
                img = base.copy()
                img[rng.integers(size), rng.integers(size)] = rng.integers(0, 256, 3)
                p = root / c / f"{c}obj{g}_{f}.png"
                Image.fromarray(img).save(p)
                out[str(p)] = f"{c}obj{g}"
    return out


def _prepare(data, tmp_path, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pd = prepare_data(str(data), data_root=str(tmp_path / "cache"), val_split=0.2, test_split=0.25,
                          options=DataOptions(**options))
    return pd, [str(w.message) for w in caught if "near-duplicate" in str(w.message)]


def _assert_groups_whole(pd, group_of: dict[str, str]) -> None:
    seen = {name: {group_of[p] for p in getattr(pd, name).paths} for name in ("train", "val", "test")}
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"]), seen
    n = len(pd.train) + len(pd.val) + len(pd.test)
    assert 0.15 <= len(pd.test) / n <= 0.35 and len(pd.val) > 0, (len(pd.train), len(pd.val), len(pd.test))
    for name in ("train", "test"):  # stratified: both classes on each side
        assert set(getattr(pd, name).y.tolist()) == {0, 1}, name


def test_group_by_keeps_every_group_in_one_split_and_silences_the_warning(tmp_path):
    group_of = _runs(tmp_path / "runs")
    pd, leaks = _prepare(tmp_path / "runs", tmp_path, group_by=r"^(\w+)_")
    _assert_groups_whole(pd, group_of)
    assert leaks == [] and pd.near_duplicates is None
    assert {pd.groups[p] for p in pd.test.paths} <= set(group_of.values())
    assert any("--group-by ^(\\w+)_: 16 groups of 5 images each" in n for n in pd.notes), pd.notes


def test_a_csv_group_column_keeps_groups_whole_and_the_flag_wins(tmp_path):
    group_of = _runs(tmp_path / "imgs")
    lines = ["path,label,subject"] + [f"{Path(p).relative_to(tmp_path)},{Path(p).parent.name},s-{g}"
                                      for p, g in group_of.items()]
    (tmp_path / "set.csv").write_text("\n".join(lines) + "\n")
    pd, leaks = _prepare(tmp_path / "set.csv", tmp_path)
    _assert_groups_whole(pd, group_of)
    assert leaks == [] and pd.near_duplicates is None and set(pd.groups.values()) == {f"s-{g}" for g in
                                                                                       group_of.values()}
    pd, _ = _prepare(tmp_path / "set.csv", tmp_path, group_by=r"obj(\d)_")  # a obj3 and b obj3: one group
    assert set(pd.groups.values()) == {str(g) for g in range(8)}


def test_carving_near_identical_runs_warns_once_with_a_count(tmp_path, cli):
    """Through `train`: one warning line, the count recorded in the run's data_summary.json."""
    _runs(tmp_path / "runs")
    res = cli("train", "--data", tmp_path / "runs", "--data-root", tmp_path / "cache", "--model", "shallow",
              "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--runs-dir", tmp_path / "out", "--no-report",
              "--name", "leaky", "--quiet")
    assert res.rc == 0, res
    lines = [ln for ln in res.err.splitlines() if "near-duplicate" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: "), res.err
    m = LEAK.search(lines[0])
    assert m and m.group(2).startswith(("a/aobj", "b/bobj")), lines[0]
    count = int(m.group(1))
    assert 15 <= count <= 20, count  # 20 test images, each with 4 near-copies: nearly all in training
    summary = json.loads((tmp_path / "out" / "leaky" / "data_summary.json").read_text())
    assert summary["near_duplicates"] == count


def test_distinct_images_give_no_warning(tmp_path):
    write_class_folders(tmp_path / "distinct", per_class=20, size=12, classes=["red", "blue"])
    pd, leaks = _prepare(tmp_path / "distinct", tmp_path)
    assert leaks == [] and pd.near_duplicates == 0


def test_a_bad_regex_is_a_one_line_error(tmp_path, cli):
    write_class_folders(tmp_path / "d", per_class=2, size=8, classes=["red", "blue"])
    res = cli("train", "--data", tmp_path / "d", "--data-root", tmp_path / "cache", "--group-by", "(unclosed",
              "--runs-dir", tmp_path / "out")
    assert_one_line_error(res, "--group-by '(unclosed' is not a regular expression", "e.g. --group-by")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # refused before reading data


@pytest.mark.timeout(60)
def test_a_backtracking_pattern_on_hostile_names_stops_in_bounded_time(tmp_path, monkeypatch):
    root = tmp_path / "d"
    write_class_folders(root, per_class=2, size=8, classes=["red", "blue"])
    Image.new("RGB", (8, 8)).save(root / "red" / ("a" * 60 + "!.png"))
    monkeypatch.setattr(groups_module, "MATCH_BUDGET_S", 0.5)
    t = time.monotonic()
    with pytest.raises(ConvclassError, match=r"took over 0.5 s on \d+ of 5 file names .* simplify it"):
        prepare_data(str(root), data_root=str(tmp_path / "cache"), options=DataOptions(group_by=r"^(a|aa)+$"))
    assert time.monotonic() - t < 20


def test_cross_validation_folds_keep_groups_whole():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"g{i}" for i in range(40)], rng.integers(1, 6, 40))
    y = np.asarray([int(g[1:]) % 3 for g in groups])
    folds = fold_indices(y, 4, seed=0, groups=groups.astype(object))
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    owners = [{g for g in groups[f]} for f in folds]
    assert all(not (owners[i] & owners[j]) for i in range(4) for j in range(i + 1, 4))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 6, sizes
    with pytest.raises(ConvclassError, match="fewer groups than --folds 5"):
        fold_indices(y[:8], 5, seed=0, groups=groups[:8].astype(object))


def test_cv_keeps_each_group_in_one_of_a_fold_s_splits(tmp_path, monkeypatch):
    """Through cross_validate with --group-by: the first fold's train, val and test share no group."""
    from convclass.pipeline import crossval
    group_of = _runs(tmp_path / "runs")
    seen = []

    class Stop(Exception):
        pass

    def first_fold_only(cfg, prepared):
        seen.append(prepared)
        raise Stop  # no training: the fold's splits are what is checked

    monkeypatch.setattr(crossval, "train_and_report", first_fold_only)
    with pytest.raises(Stop):
        crossval.cross_validate(data=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"), folds=4,
                                group_by=r"^(\w+)_", runs_dir=str(tmp_path / "out"), quiet=True)
    fold = seen[0]
    owners = [{group_of[p] for p in s.paths} for s in (fold.train, fold.val, fold.test)]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2]), owners
    assert len(owners[2]) == 4 and len(owners[1]) >= 1  # 16 groups in 4 folds
