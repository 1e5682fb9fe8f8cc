"""CSV injection: class folders and files named like spreadsheet formulas (`=HYPERLINK(...)`, `@SUM(...)`, `+...`,
`-...`) must reach every report CSV convclass writes as text, never as a formula a spreadsheet would run; the CSVs
convclass reads back (label-issues' without_issues.csv) keep the names exactly, so they train as the same classes."""
from __future__ import annotations

import csv
import shutil

import pytest

from synth import write_class_folders

FORMULA = ("=", "+", "-", "@", "\t", "\r")
CLASSES = ['=HYPERLINK("http:evil","click")', "@SUM(1+1)", "+cmd", "-2+3"]
FAST = ["--model", "shallow", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--quiet", "--no-report"]


def _cells(path) -> list[str]:
    with open(path, newline="") as f:
        return [c for row in csv.reader(f) for c in row]


def _assert_inert(path, *hostile: str) -> None:
    """No cell of `path` starts a formula, and each `hostile` name is there, quoted as text."""
    cells = _cells(path)
    assert not [c for c in cells if c.startswith(FORMULA)], path
    for name in hostile:
        assert any(c.startswith("'" + name) for c in cells), (path, name)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("csv_injection")
    root = base / "data"
    files = write_class_folders(root, per_class=8, size=8, classes=CLASSES)
    shutil.copy(files[CLASSES[1]][0], root / CLASSES[1] / "=cmd.png")  # an exact duplicate under a formula name
    return base, root


@pytest.mark.timeout(180)
def test_report_csvs_hold_formula_names_as_text(hostile, cli, monkeypatch):
    base, root = hostile
    runs = ["--runs-dir", base / "runs", "--data-root", base / "cache"]
    assert cli("train", "--data", root, *FAST, *runs, "--name", "r").rc == 0
    r = cli("evaluate", base / "runs/r", "--device", "cpu")
    assert r.rc == 0, r
    for name in ("per_class.csv", "confusion_matrix.csv"):
        _assert_inert(base / "runs/r/eval-test" / name, *CLASSES)
    monkeypatch.chdir(root / CLASSES[1])  # a relative path as the user typed it: the cell starts with =
    r = cli("predict", base / "runs/r", "=cmd.png", "--topk", "4", "--output", base / "pred.csv", "--device", "cpu")
    assert r.rc == 0, r
    _assert_inert(base / "pred.csv", "=cmd.png", *CLASSES)
    r = cli("inspect", root, "--output", base / "inspect", "--data-root", base / "cache")
    assert r.rc == 0, r
    _assert_inert(base / "inspect/duplicates.csv", CLASSES[1])


@pytest.mark.timeout(180)
def test_label_issues_quotes_its_report_but_not_the_csvs_it_trains_on(hostile, cli):
    base, root = hostile
    r = cli("label-issues", root, "--folds", "2", *FAST, "--runs-dir", base / "runs", "--data-root", base / "cache",
            "--name", "li")
    assert r.rc == 0, r
    out = base / "runs/li"
    assert not [c for c in _cells(out / "label_issues.csv") + _cells(out / "class_overlap.csv")
                if c.startswith(FORMULA)]
    labels = {row["label"] for row in csv.DictReader(open(out / "relabelled.csv", newline=""))}
    assert labels <= set(CLASSES) and len(labels) > 1  # the names as they are: convclass reads them back
    assert "--task single" in r.out  # the hint: a name holding a comma would otherwise read as a label set
    r = cli("train", "--data", out / "relabelled.csv", "--task", "single", *FAST, "--runs-dir", base / "again",
            "--data-root", base / "cache2", "--name", "again")
    assert r.rc == 0, r
    import torch
    assert set(torch.load(base / "again/again/best.pt", weights_only=True)["classes"]) == labels
