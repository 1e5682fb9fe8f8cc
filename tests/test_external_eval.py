"""evaluate on another labelled set (every image, labels matched to the model's classes by name) and cv --subset
(drawn once from the pooled images, so it is the number of images the whole cross-validation sees)."""
from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import assert_one_line_error
from synth import write_class_folders

pytestmark = pytest.mark.timeout(120)
CLASSES = ["01", "02", "03"]  # zero-padded folders, as GTSRB's training set has them


@pytest.fixture(scope="module")
def numbered_run(tmp_path_factory):
    """A model trained on class folders 01, 02, 03 (no split folders: its test split is carved)."""
    from convclass import train
    base = tmp_path_factory.mktemp("numbered")
    write_class_folders(base / "train", per_class=8, size=8, classes=CLASSES)
    return train(data=str(base / "train"), model="shallow", epochs=1, batch_size=16, device="cpu", report=False,
                 runs_dir=str(base / "runs"), data_root=str(base / "cache"), quiet=True, name="numbered")


def _gtsrb_csv(folder, labels: dict[str, int]):
    """GTSRB's test layout: bare file names beside a `;` CSV with a header and integer (unpadded) labels."""
    rows = []
    for label, n in labels.items():
        for p in write_class_folders(folder / "src", per_class=n, size=8, classes=[f"c{label}"], seed=3)[f"c{label}"]:
            shutil.move(p, folder / p.name)
            rows.append(f"{p.name};8;{label}")
    csv = folder / "GT-test.csv"
    csv.write_text("Filename;Width;ClassId\n" + "\n".join(rows) + "\n")
    return csv


def test_external_csv_scores_every_row_with_integer_labels_and_a_subset_of_classes(cli, numbered_run, tmp_path):
    csv = _gtsrb_csv(tmp_path / "gt", {"1": 5, "2": 4})  # 2 of the model's 3 classes, `1` for folder `01`
    res = cli("evaluate", numbered_run.run_dir, "--data", csv, "--device", "cpu")
    assert res.rc == 0, res
    assert (f"scored 9 images of {csv.resolve()} (external set; labels mapped to the model's 3 classes by name)"
            in res.out), res.out
    m = json.loads((numbered_run.run_dir / "eval-GT-test" / "metrics.json").read_text())
    assert m["n"] == 9 and m["external"] is True
    assert [r["class"] for r in m["per_class"]] == CLASSES  # the model's classes, the report's rows
    assert [r["support"] for r in m["per_class"]] == [5, 4, 0]


def test_evaluate_takes_the_csv_column_options_for_the_set(cli, numbered_run, tmp_path):
    csv = _gtsrb_csv(tmp_path / "gt", {"3": 3})
    csv.write_text(csv.read_text().replace("Filename;Width;ClassId", "photo;w;kind"))  # names nobody guesses
    res = cli("evaluate", numbered_run.run_dir, "--data", csv, "--path-column", "photo", "--label-column", "kind",
              "--device", "cpu", "--output", tmp_path / "ev")
    assert res.rc == 0, res
    assert "scored 3 images of" in res.out, res.out


def test_a_label_the_model_does_not_know_is_a_one_line_error(cli, numbered_run, tmp_path):
    csv = _gtsrb_csv(tmp_path / "gt", {"1": 2, "7": 2})
    res = cli("evaluate", numbered_run.run_dir, "--data", csv, "--device", "cpu")
    assert_one_line_error(res, "label(s) the model does not know: 7;", "its 3 classes are 01, 02, 03")


def test_another_folder_is_scored_whole_or_by_its_own_test_split(cli, numbered_run, tmp_path):
    flat = tmp_path / "flat"  # no split folders, unpadded names: every image counts, none carved off
    write_class_folders(flat, per_class=5, size=8, classes=["2", "3"], seed=5)
    res = cli("evaluate", numbered_run.run_dir, "--data", flat, "--device", "cpu", "--output", tmp_path / "e1")
    assert res.rc == 0, res
    assert f"scored 10 images of {flat.resolve()} (external set;" in res.out, res.out
    split = tmp_path / "split"
    # a class only in its train split, which is not scored, need not be one of the model's
    write_class_folders(split / "train", per_class=2, size=8, classes=[*CLASSES, "other"], seed=6)
    write_class_folders(split / "test", per_class=3, size=8, classes=CLASSES[:2], seed=7)
    res = cli("evaluate", numbered_run.run_dir, "--data", split, "--device", "cpu", "--output", tmp_path / "e2")
    assert res.rc == 0, res
    assert f"scored 6 images of the test split of {split.resolve()}" in res.out, res.out


def test_the_training_folder_keeps_its_held_out_test_split(cli, numbered_run, tmp_path):
    n = numbered_run.test_metrics["n"]
    assert 0 < n < 24
    (tmp_path / "link").symlink_to(numbered_run.run_dir.parent.parent / "train")  # the same folder, spelled apart
    for extra in ((), ("--data", tmp_path / "link")):
        res = cli("evaluate", numbered_run.run_dir, *extra, "--device", "cpu", "--output", tmp_path / "ev")
        assert res.rc == 0, res
        assert f"test split of the training data: {n} images" in res.out, (extra, res.out)


def test_cv_subset_is_the_number_of_images_all_folds_see(rgb_folder, tmp_path, monkeypatch, capsys):
    from convclass.pipeline import crossval
    seen = []

    def fake_train(cfg, prepared):  # the folds' data is what matters here, not training them
        seen.append({k: getattr(prepared, k).y.numpy() for k in ("train", "val", "test")})
        n = len(prepared.test)
        return SimpleNamespace(test_metrics={"accuracy": 1.0, "f1_macro": 1.0, "n": n, "checkpoint_epoch": 1},
                               run_dir=tmp_path / f"fold{len(seen)}")

    monkeypatch.setattr(crossval, "train_and_report", fake_train)
    # the fold's own test images (cv keeps every image's out-of-fold probabilities)
    monkeypatch.setattr(crossval, "load_predictions", lambda run: {"y_true": seen[-1]["test"],
                                                                    "probs": np.eye(3)[seen[-1]["test"]]})
    r = crossval.cross_validate(data=str(rgb_folder), subset=18, folds=3, model="shallow", device="cpu",
                                runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"))
    assert r["n"] == 18 and "cross-validation on 18 images in total" in capsys.readouterr().out
    assert [sum(len(f[k]) for k in f) for f in seen] == [18, 18, 18]  # train + val + test of each fold
    assert sum(len(f["test"]) for f in seen) == 18  # each image tested once
    assert all(np.bincount(f["test"], minlength=3).tolist() == [2, 2, 2] for f in seen)  # stratified
    assert re.search(r"\(18 images\)", crossval.format_cv(r))
