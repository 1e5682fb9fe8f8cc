"""`convclass label-issues`: cleanlab on cross-validated probabilities finds a deliberately flipped image, the
page escapes hostile names and embeds everything, and retraining reads the written CSVs, never the folder."""
from __future__ import annotations

import csv
import hashlib
import re

import numpy as np
import pytest

from conftest import assert_one_line_error
from synth import write_class_folders

pytest.importorskip("cleanlab")

FLIPPED = "blue/flipped_red.png"  # a red image filed under blue


def _snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """3 colour classes x 10 images, one red image moved into blue/, checked by the CLI with 2 folds of cnn3."""
    from convclass.cli import main
    base = tmp_path_factory.mktemp("label_issues")
    root = base / "colours"
    files = write_class_folders(root, per_class=10, size=16)
    files["red"][0].rename(root / FLIPPED)
    before = _snapshot(root)
    rc = main(["label-issues", str(root), "--folds", "2", "--model", "cnn3", "--epochs", "2", "--batch-size", "16",
               "--lr", "0.01", "--device", "cpu", "--quiet", "--no-report", "--runs-dir", str(base / "runs"),
               "--data-root", str(base / "cache"), "--name", "colours"])
    assert rc == 0
    return root, base / "runs" / "colours", before  # cv --name X writes runs/X


@pytest.mark.timeout(120)
def test_flipped_image_is_the_top_label_issue(flipped):
    root, out, _ = flipped
    rows = _rows(out / "label_issues.csv")
    labels = [r for r in rows if r["kind"] == "label"]
    assert labels and labels[0]["path"] == str(root / FLIPPED)
    assert (labels[0]["given"], labels[0]["suggested"]) == ("blue", "red")
    scores = [float(r["score"]) for r in labels]
    assert scores == sorted(scores)  # ranked by self-confidence, lowest first
    oof = np.load(out / "oof.npz")
    assert oof["probs"].shape == (30, 3) and sorted(np.bincount(oof["fold"])) == [15, 15]  # every image held out once


@pytest.mark.timeout(120)
def test_retrain_csvs_leave_the_folder_untouched(flipped, tmp_path, cli):
    root, out, before = flipped
    kept = {r["path"] for r in _rows(out / "without_issues.csv")}
    assert str(root / FLIPPED) not in kept and str(root / "blue/blue_000.png") in kept
    fixed = {r["path"]: r["label"] for r in _rows(out / "relabelled.csv")}
    assert fixed[str(root / FLIPPED)] == "red" and len(fixed) == 30
    r = cli("train", "--data", out / "without_issues.csv", "--model", "cnn3", "--epochs", "1", "--device", "cpu",
            "--quiet", "--no-report", "--runs-dir", tmp_path, "--data-root", tmp_path / "cache", "--name", "again")
    assert r.rc == 0, r
    summary = (tmp_path / "again" / "data_summary.json").read_text()
    assert "flipped_red" not in summary
    assert _snapshot(root) == before  # nothing in the source folder moved, changed or appeared


@pytest.mark.timeout(120)
def test_from_cv_reuses_the_folds(flipped):
    from convclass.pipeline.label_issues import find_label_issues
    root, out, _ = flipped
    first = (out / "label_issues.csv").read_text()
    r = find_label_issues(from_cv=out, quiet=True)
    assert (out / "label_issues.csv").read_text() == first
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("fold")) == ["fold1", "fold2"]  # no new training
    assert r["report"].counts()["label"] >= 1


@pytest.mark.timeout(60)
def test_from_cv_refuses_a_folder_without_a_cv_run(tmp_path, cli):
    assert_one_line_error(cli("label-issues", "--from-cv", tmp_path), "cv.json")


@pytest.mark.timeout(60)
def test_from_cv_refuses_a_damaged_oof_file(flipped, tmp_path, cli):
    _, out, _ = flipped
    (tmp_path / "cv.json").write_bytes((out / "cv.json").read_bytes())
    (tmp_path / "oof.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert_one_line_error(cli("label-issues", "--from-cv", tmp_path, "--quiet"), "oof.npz")


@pytest.mark.timeout(60)
def test_find_issues_on_arrays_flags_label_error_outlier_and_twin():
    from convclass.inspection.label_issues import find_issues
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    probs = np.where(np.eye(2)[y] == 1, 0.95, 0.05)
    probs[7] = [0.03, 0.97]  # labelled 0, the model is sure it is 1
    feats = rng.normal(size=(60, 8)).astype(np.float32) + 4 * np.eye(8)[y]
    feats[40] = 60.0  # far from everything
    feats[12] = feats[13] + 1e-5
    r = find_issues(y, probs, feats, ["cat", "dog"])
    label = [i for i in r.issues if i.kind == "label"]
    assert [i.index for i in label] == [7] and label[0].suggested == 1
    assert 40 in [i.index for i in r.issues if i.kind == "outlier"]
    twins = {i.index: i.partner for i in r.issues if i.kind == "near_duplicate"}
    assert twins.get(12) == 13 and twins.get(13) == 12
    assert r.overlap and {r.overlap[0]["class_a"], r.overlap[0]["class_b"]} == {"cat", "dog"}


@pytest.mark.timeout(60)
def test_without_issues_keeps_outliers_unless_told(tmp_path):
    """An outlier is an unusual image, not a wrong one: without_issues.csv leaves out label errors only, unless
    --leave-out names outliers too (it once dropped both: 457 outliers of 10,000 Fashion-MNIST images)."""
    from convclass.inspection.label_issues import Issue, IssueReport, write_retrain_csvs
    y = np.array([0, 0, 1, 1])
    report = IssueReport([Issue(1, "label", 0.01, 0, 1), Issue(2, "outlier", 0.2, 1, 1)], [], 4)
    paths = [str(tmp_path / f"{i}.png") for i in range(4)]
    kept = [r["path"] for r in _rows(write_retrain_csvs(report, tmp_path, y, ["a", "b"], paths)["without_issues"])]
    assert kept == [paths[0], paths[2], paths[3]]
    both = write_retrain_csvs(report, tmp_path, y, ["a", "b"], paths, ("label", "outlier"))["without_issues"]
    assert [r["path"] for r in _rows(both)] == [paths[0], paths[3]]


@pytest.mark.timeout(120)
def test_leave_out_from_the_cli(flipped, cli):
    _, out, _ = flipped
    r = cli("label-issues", "--from-cv", out, "--quiet", "--leave-out", "label,outlier")
    assert r.rc == 0, r
    assert "without_issues.csv leaves out" in r.out and "(label, outlier)" in r.out
    assert_one_line_error(cli("label-issues", "--from-cv", out, "--leave-out", "label,typo"), "--leave-out")


@pytest.mark.timeout(60)
def test_multilabel_rows_go_through_cleanlabs_multilabel_path(tmp_path):
    from convclass.inspection.label_issues import find_issues, write_issues_csv, write_retrain_csvs
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(np.float32)
    y[y.sum(1) == 0, 0] = 1
    probs = np.clip(y * 0.9 + 0.05 + rng.normal(0, 0.02, y.shape), 0.01, 0.99)  # sigmoid rows: no sum to 1
    y[7], probs[7] = [1, 0, 0], [0.03, 0.97, 0.96]  # labelled {a}, the model sees {b, c}
    r = find_issues(y, probs, None, ["a", "b", "c"])
    label = [i for i in r.issues if i.kind == "label"]
    assert [i.index for i in label] == [7] and (label[0].given, label[0].suggested) == ((0,), (1, 2))
    paths = [str(tmp_path / f"{i}.png") for i in range(60)]
    row = _rows(write_issues_csv(r, tmp_path / "issues.csv", ["a", "b", "c"], paths))[0]
    assert (row["given"], row["suggested"]) == ("a", "b|c")
    fixed = _rows(write_retrain_csvs(r, tmp_path, y, ["a", "b", "c"], paths)["relabelled"])
    assert fixed[7]["labels"] == "b|c" and fixed[8]["labels"] == "|".join("abc"[j] for j in np.flatnonzero(y[8]))


def test_page_escapes_hostile_names_and_fetches_nothing(tmp_path):
    from convclass.inspection.issues_page import write_issues_page
    from convclass.inspection.label_issues import Issue, IssueReport
    hostile = '<img src=x onerror=alert(1)>"'
    rep = IssueReport(issues=[Issue(0, "label", 0.01, 0, 1), Issue(1, "near_duplicate", 0.1, 1, 1, partner=0)],
                      overlap=[{"class_a": hostile, "class_b": "b", "examples": 1, "joint": 0.1}], n=2,
                      notes=[f"note {hostile}"])
    images = np.zeros((2, 3, 8, 8), np.uint8)
    page = write_issues_page(rep, tmp_path / "p.html", images, [hostile, "b"], [f"/x/{hostile}.png", "/y.png"],
                             summary=hostile).read_text()
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page and "&lt;img src=x" in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(href|url\()|https?://", page)
