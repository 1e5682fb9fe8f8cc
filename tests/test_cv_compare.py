"""`convclass cv` (stratified K-fold, mean ± std) and `convclass compare` (table + overlaid curves)."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error


def test_fold_indices_partition_and_stratify():
    from convclass.pipeline.crossval import fold_indices
    y = np.repeat(np.arange(3), [50, 20, 7])
    folds = fold_indices(y, 5, seed=0)
    allidx = np.concatenate(folds)
    assert sorted(allidx.tolist()) == list(range(len(y)))  # every image tested exactly once
    for f in folds:
        counts = np.bincount(y[f], minlength=3)
        assert counts[0] == 10 and counts[1] == 4 and counts[2] in (1, 2)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1


def test_cv_digits_prints_mean_std_for_every_metric(tmp_path, cli):
    r = cli("cv", "--folds", "5", "--data", "digits", "--model", "shallow", "--epochs", "1", "--lr", "0.01",
            "--device", "cpu", "--runs-dir", tmp_path, "--data-root", tmp_path / "cache", "--quiet")
    assert r.rc == 0, r
    out = tmp_path / "digits-shallow-cv"
    res = json.loads((out / "cv.json").read_text())
    assert len(res["folds"]) == 5 and res["n"] == 1797
    assert sum(f["n_test"] for f in res["folds"]) == 1797
    expected = ["accuracy", "top5_accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
                "recall_weighted", "f1_weighted", "ece"]
    assert res["metrics"] == expected
    for k in expected:
        line = next(ln for ln in r.out.splitlines() if ln.strip().startswith(k + " "))
        m = re.search(r"(\d\.\d{4}) ± (\d\.\d{4})$", line)
        assert m, line
        vals = [f[k] for f in res["folds"]]
        assert float(m.group(1)) == pytest.approx(np.mean(vals), abs=1e-4)
        assert float(m.group(2)) == pytest.approx(np.std(vals, ddof=1), abs=1e-4)
    assert 0.5 < res["mean"]["accuracy"] <= 1.0
    rows = list(csv.reader(open(out / "cv.csv")))
    assert [r_[0] for r_ in rows[1:]] == ["1", "2", "3", "4", "5", "mean", "std"]
    assert all((out / f"fold{i}" / "best.pt").exists() for i in range(1, 6))


def test_cv_rejects_too_many_folds(tmp_path, cli, rgb_folder):
    assert_one_line_error(cli("cv", "--folds", "50", "--data", rgb_folder, "--runs-dir", tmp_path,
                              "--data-root", tmp_path / "cache", "--quiet"), "fewer than --folds")


def test_compare_two_runs(tmp_path, cli, rgb_folder):
    from convclass import train
    runs = []
    for model in ("mlp", "shallow"):
        runs.append(train(data=str(rgb_folder), model=model, epochs=2, lr=0.01, device="cpu", quiet=True,
                          report=False, runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"),
                          name=model).run_dir)
    png = tmp_path / "cmp.png"
    r = cli("compare", *runs, "--output", png)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["mlp", "shallow"]
    acc = next(ln for ln in lines if ln.startswith("test acc"))
    vals = [float(v) for v in acc.split()[2:]]
    for run, v in zip(runs, vals):
        assert v == pytest.approx(json.loads((run / "test_metrics.json").read_text())["accuracy"], abs=1e-4)
    params = next(ln for ln in lines if ln.startswith("params")).split()[1:]
    assert params[0] != params[1]
    w, h = Image.open(png).size
    assert w > 800 and h > 250
    assert_one_line_error(cli("compare", tmp_path / "nope"), "not a run folder")
