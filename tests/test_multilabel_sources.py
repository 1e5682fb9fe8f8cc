"""Multi-label data inside an archive (a CSV of label sets with its images, read in place) and as WebDataset
shards (`convclass shard` writes each sample's labels as a .json list; training streams them)."""
from __future__ import annotations

import csv
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error
from convclass.checkpoint import load_checkpoint
from convclass.data import find_data
from convclass.data.archive import SEP, read_source
from convclass.safeio import Refused
from multilabel_synth import LABELS, write_multilabel_csv

TRAIN = ("--model", "shallow", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-report", "--threads",
         "1")


def _pack(path: Path, root: Path, prefix: str = "") -> Path:
    files = sorted(f for f in root.rglob("*") if f.is_file())
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            for f in files:
                z.write(f, prefix + f.relative_to(root).as_posix())
    else:
        with tarfile.open(path, "w:gz") as t:
            for f in files:
                t.add(f, prefix + f.relative_to(root).as_posix())
    return path


def _expected(csv_path: Path) -> np.ndarray:
    """(N, K) 0/1 rows of the CSV's label sets, labels in sorted order."""
    rows = list(csv.DictReader(csv_path.open()))
    classes = sorted(LABELS)
    return np.array([[int(c in r["labels"].split("|")) for c in classes] for r in rows])


@pytest.fixture(scope="module")
def ml_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "photos"
    return write_multilabel_csv(root, n=40, rare=0.3)


@pytest.mark.parametrize("name, prefix", [("photos.zip", ""), ("photos.tar.gz", "photos/")])
def test_a_csv_of_label_sets_inside_an_archive_is_multilabel(tmp_path, ml_data, name, prefix):
    archive = _pack(tmp_path / name, ml_data.parent, prefix)  # labels.csv + images/, or under a top folder
    spec = find_data(str(archive))
    assert spec.name == "photos" and spec.classes == sorted(LABELS)
    assert np.array_equal(spec.train.labels, _expected(ml_data))
    assert spec.train.paths[3] == f"{archive}{SEP}{prefix}images/3.png"


def test_a_table_in_an_archive_reads_only_its_own_members(tmp_path, ml_data):
    outside = tmp_path / "secret.png"  # beside the archive: a table naming it must not reach it
    outside.write_bytes((ml_data.parent / "images" / "0.png").read_bytes())
    lines = ml_data.read_text().splitlines()
    lines[1:3] = ["../secret.png,red", f"{outside},red"]
    src = tmp_path / "src"
    shutil.copytree(ml_data.parent / "images", src / "images")
    (src / "labels.csv").write_text("\n".join(lines) + "\n")
    spec = find_data(str(_pack(tmp_path / "p.zip", src)))
    assert all(p.startswith(f"{tmp_path / 'p.zip'}{SEP}") for p in spec.train.paths)
    for p in spec.train.paths[:2]:
        with pytest.raises(Refused):
            read_source(p)


def test_several_tables_none_named_labels_is_a_one_line_error(cli, tmp_path, ml_data):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "a.csv").write_text(ml_data.read_text())
    (src / "b.csv").write_text(ml_data.read_text())
    res = cli("train", "--data", _pack(tmp_path / "two.zip", src), *TRAIN, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(res, "several tables", "labels.csv")


@pytest.mark.timeout(120)
def test_multilabel_trains_from_an_archive_and_from_shards(cli, tmp_path, ml_data):
    archive = _pack(tmp_path / "photos.zip", ml_data.parent)
    common = (*TRAIN, "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache")
    res = cli("train", "--data", archive, "--name", "zip", *common)
    assert res.rc == 0, res.err
    assert "test mAP" in res.out and load_checkpoint(tmp_path / "runs" / "zip" / "best.pt")["task"] == "multi"

    assert cli("shard", archive, tmp_path / "shards", "--shard-size", "16").rc == 0
    import webdataset as wds
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    samples = list(wds.WebDataset(str(tmp_path / "shards" / index["splits"]["train"][0]), shardshuffle=False))
    assert all(isinstance(json.loads(s["json"])["labels"], list) and "cls" not in s for s in samples)
    spec = find_data(str(tmp_path / "shards" / "shards.json"))
    assert spec.train.labels.shape[1] == 3 and sorted(map(tuple, spec.train.labels)) == \
        sorted(map(tuple, _expected(ml_data)))  # every label set, in the shards' shuffled order
    res = cli("train", "--data", tmp_path / "shards" / "shards.json", "--name", "shards", *common)
    assert res.rc == 0, res.err
    assert "WebDataset shards" in res.out and "test mAP" in res.out
    assert load_checkpoint(tmp_path / "runs" / "shards" / "best.pt")["classes"] == sorted(LABELS)


def test_class_folders_beside_a_stray_table_stay_class_folders(tmp_path):
    from synth import write_class_folders
    root = tmp_path / "kaggle"
    write_class_folders(root, per_class=3, classes=["cat", "dog"])
    (root / "metadata.csv").write_text("source,licence\nweb,cc-by\n")  # not a table of image paths and labels
    spec = find_data(str(_pack(tmp_path / "kaggle.zip", root)))
    assert spec.classes == ["cat", "dog"] and len(spec.train.paths) == 6
    assert any("metadata.csv" in n for n in spec.notes)
