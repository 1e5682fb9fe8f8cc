"""`convclass label-issues` on a multi-label CSV: cleanlab's multi-label path flags the label sets made wrong on
purpose, suggests each image's labels at the thresholds its fold model tuned, and writes CSVs that train again."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from multilabel_synth import write_multilabel_csv
from test_label_issues import _rows

pytest.importorskip("cleanlab")

FLIPS = {3: "red|green|blue", 5: "", 8: "blue"}  # image -> a wrong label set (3 is blue, 5 red, 8 green)
TRAIN = ["--model", "shallow", "--epochs", "6", "--batch-size", "8", "--lr", "0.01", "--val-split", "0.3",
         "--device", "cpu", "--quiet", "--no-report"]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """48 images, 3 of them relabelled wrongly, checked by the CLI with 2 folds of the shallow model."""
    from convclass.cli import main
    base = tmp_path_factory.mktemp("ml_issues")
    labels = write_multilabel_csv(base / "set", n=48)
    lines = labels.read_text().splitlines()
    for i, wrong in FLIPS.items():
        lines[i + 1] = f'images/{i}.png,"{wrong}"'
    labels.write_text("\n".join(lines) + "\n")
    rc = main(["label-issues", str(labels), "--folds", "2", *TRAIN, "--runs-dir", str(base / "runs"),
               "--data-root", str(base / "cache"), "--name", "ml"])
    assert rc == 0
    return base, base / "runs" / "ml"


@pytest.mark.timeout(180)
def test_wrong_label_sets_are_flagged_and_ranked(checked):
    base, out = checked
    rows = [r for r in _rows(out / "label_issues.csv") if r["kind"] == "label"]
    flagged = {r["path"]: r for r in rows}
    for i in FLIPS:
        assert str(base / "set" / "images" / f"{i}.png") in flagged
    assert flagged[str(base / "set/images/8.png")]["suggested"] == "green"
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # worst first, by the score shown
    overlap = _rows(out / "class_overlap.csv")
    assert overlap and set(overlap[0]) == {"label", "issue", "examples", "probability"}  # no class pairs


@pytest.mark.timeout(180)
def test_rewritten_csvs_are_multilabel_and_train_again(checked, cli):
    base, out = checked
    fixed = {r["path"]: r["labels"] for r in _rows(out / "relabelled.csv")}
    assert len(fixed) == 48 and fixed[str(base / "set/images/8.png")] == "green"
    assert fixed[str(base / "set/images/0.png")] == "blue|green"  # untouched sets keep every label
    kept = {r["path"] for r in _rows(out / "without_issues.csv")}
    assert not kept & {str(base / "set" / "images" / f"{i}.png") for i in FLIPS}
    r = cli("train", "--data", out / "without_issues.csv", "--task", "multi", *TRAIN[:-4], "--epochs", "1",
            "--device", "cpu", "--quiet", "--no-report", "--runs-dir", base / "again", "--data-root",
            base / "cache2", "--name", "again")
    assert r.rc == 0, r
    model = torch.load(base / "again/again/best.pt", weights_only=True)
    assert model["task"] == "multi" and model["classes"] == ["blue", "green", "red"]


def _cv_copy(out, folder, cuts: list) -> None:
    """`out`'s cv run copied into `folder`, fold k's best.pt rewritten with thresholds cuts[k]."""
    from convclass.checkpoint import save_checkpoint
    for name in ("cv.json", "oof.npz"):
        (folder / name).write_bytes((out / name).read_bytes())
    for k, t in enumerate(cuts):
        ckpt = torch.load(out / f"fold{k + 1}/best.pt", weights_only=True)
        (folder / f"fold{k + 1}").mkdir()
        save_checkpoint({key: v for key, v in ckpt.items() if key != "format"} | {"thresholds": t},
                        folder / f"fold{k + 1}/best.pt")


@pytest.mark.timeout(120)
def test_suggestions_follow_the_thresholds_of_the_fold_that_held_each_image_out(checked, tmp_path):
    from convclass.pipeline.label_issues import find_label_issues
    _, out = checked
    _cv_copy(out, tmp_path, [[0.0] * 3, [1.0] * 3])  # fold 1 suggests every label, fold 2 (almost) none
    find_label_issues(from_cv=tmp_path, quiet=True)
    oof = np.load(out / "oof.npz")
    index = {str(p): i for i, p in enumerate(oof["paths"])}
    rows = [r for r in _rows(tmp_path / "label_issues.csv") if r["kind"] == "label"]
    assert {oof["fold"][index[r["path"]]] for r in rows} == {0, 1}
    for r in rows:
        i = index[r["path"]]
        want = "blue|green|red" if oof["fold"][i] == 0 else "|".join(c for c, p in zip(oof["classes"],
                                                                                      oof["probs"][i]) if p >= 1)
        assert r["suggested"] == want


@pytest.mark.timeout(120)
def test_a_fold_checkpoint_with_lying_thresholds_is_refused(checked, tmp_path, cli):
    _, out = checked
    _cv_copy(out, tmp_path, [[0.5, 7.0, 0.5], [0.5] * 3])
    assert_one_line_error(cli("label-issues", "--from-cv", tmp_path, "--quiet"), "refusing", "thresholds")
    assert not (tmp_path / "label_issues.csv").exists()


@pytest.mark.timeout(60)
def test_a_clean_multilabel_set_has_no_label_issues():
    from convclass.inspection.label_issues import find_issues
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(np.float32)
    y[y.sum(1) == 0, 0] = 1
    r = find_issues(y, np.clip(y * 0.9 + 0.05, 0.01, 0.99), None, ["a", "b", "c"])  # cleanlab ranked nothing: error
    assert r.counts()["label"] == 0 and r.multilabel and "no class-pair overlap" in r.notes[0]
