"""evaluate and predict on a trained run, and the metric functions against scikit-learn."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from convclass.checkpoint import load_checkpoint
from convclass.metrics import classification_metrics
from convclass.inference import predict
from synth import truncated_jpeg


def test_evaluate_reproduces_the_training_test_metrics(cli, trained_run, tmp_path):
    run = trained_run.run_dir
    res = cli("evaluate", run, "--device", "cpu", "--output", tmp_path / "ev")
    assert res.rc == 0, res
    want = json.loads((run / "test_metrics.json").read_text())
    printed = float(re.search(r"accuracy\s+([0-9.]+)", res.out).group(1))
    assert printed == pytest.approx(want["accuracy"], abs=5e-5)
    out = tmp_path / "ev"
    for name in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    got = json.loads((out / "metrics.json").read_text())
    assert got["accuracy"] == want["accuracy"] and got["confusion_matrix"] == want["confusion_matrix"]
    assert got["n"] == want["n"] == trained_run.test_metrics["n"]
    with open(out / "per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["blue", "green", "red"]
    assert sum(int(r["support"]) for r in rows) == got["n"]
    with open(out / "confusion_matrix.csv") as f:
        cm = [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]]
    assert cm == got["confusion_matrix"]


def test_evaluate_other_split_defaults_to_the_run_folder(cli, trained_run):
    res = cli("evaluate", trained_run.run_dir, "--split", "val", "--device", "cpu")
    assert res.rc == 0, res
    m = json.loads((trained_run.run_dir / "eval-val" / "metrics.json").read_text())
    assert m["split"] == "val" and m["n"] == load_checkpoint(trained_run.run_dir)["data"]["n_val"] > 0
    assert (trained_run.run_dir / "eval-val" / "confusion_matrix.png").exists()


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_predict_folder_to_csv_and_json(cli, trained_run, rgb_folder, tmp_path):
    n_images = len(list(rgb_folder.rglob("*.png")))
    res = cli("predict", trained_run.run_dir, rgb_folder, "--output", tmp_path / "preds.csv", "--topk", "2",
              "--device", "cpu")
    assert res.rc == 0, res
    rows = _read_csv(tmp_path / "preds.csv")
    assert len(rows) == n_images and set(rows[0]) == {"path", "class1", "prob1", "class2", "prob2"}
    for r in rows:
        assert r["class1"] in ("red", "green", "blue") and float(r["prob1"]) >= float(r["prob2"])
    # The colours are easy: the model trained on these very images gets most of them right.
    correct = np.mean([r["class1"] == r["path"].split("/")[-2] for r in rows])
    assert correct > 0.8, correct

    res = cli("predict", trained_run.run_dir, rgb_folder, "--output", tmp_path / "preds.json", "--device", "cpu")
    assert res.rc == 0, res
    js = json.loads((tmp_path / "preds.json").read_text())
    assert [r["path"] for r in js] == [r["path"] for r in rows]
    assert [r["top"][0][0] for r in js] == [r["class1"] for r in rows]
    for r in js:
        assert len(r["top"]) == 3 and sum(p for _, p in r["top"]) == pytest.approx(1, abs=1e-5)


def test_predict_glob_and_broken_files(cli, trained_run, rgb_folder, tmp_path):
    res = cli("predict", trained_run.run_dir, str(rgb_folder / "red" / "*_00[0-4].png"), "--device", "cpu")
    assert res.rc == 0, res
    lines = [ln for ln in res.out.splitlines() if ln.endswith(tuple("0123456789"))]
    assert len(lines) == 5 and all("/red/" in ln for ln in lines)

    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in list(rgb_folder.glob("green/*.png"))[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    truncated_jpeg(folder / "broken.jpg")
    res = cli("predict", trained_run.run_dir, folder, "--device", "cpu")
    assert res.rc == 0 and "Traceback" not in res.err
    assert "skipped" in res.err and "broken.jpg" in res.err
    results, skipped = predict(trained_run.run_dir, [str(folder)], topk=1, device="cpu")
    assert len(results) == 2 and [p for p, _ in skipped] == [str(folder / "broken.jpg")]


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k = 7
    n = 200
    # Some classes never occur in y_true (seed-dependent), some are never predicted.
    present = rng.choice(k, size=rng.integers(3, k + 1), replace=False)
    y = rng.choice(present, size=n)
    probs = rng.dirichlet(np.ones(k) * 0.3, size=n)
    probs[np.arange(n) % 3 == 0, y[np.arange(n) % 3 == 0]] += 1.0  # better than chance, so metrics vary
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = classification_metrics(y, probs, [f"c{i}" for i in range(k)])

    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert np.array_equal(np.asarray(m["confusion_matrix"]), sk_confusion(y, pred, labels=range(k)))
    labels_present = sorted(set(y.tolist()))
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels_present, average="macro", zero_division=0)
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx((p, r, f))
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=range(k), average="weighted", zero_division=0)
    assert (m["precision_weighted"], m["recall_weighted"], m["f1_weighted"]) == pytest.approx((p, r, f))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), average=None, zero_division=0)
    per = m["per_class"]
    assert [c["precision"] for c in per] == pytest.approx(p)
    assert [c["recall"] for c in per] == pytest.approx(r)
    assert [c["f1"] for c in per] == pytest.approx(f)
    assert [c["support"] for c in per] == s.tolist()
    assert m["top5_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=range(k)))


def test_evaluate_from_another_folder_after_training_on_a_relative_path(cli, rgb_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(rgb_folder.parent)
    res = cli("train", "--data", rgb_folder.name, "--model", "shallow", "--epochs", "1", "--device", "cpu",
              "--no-report", "--runs-dir", tmp_path / "runs", "--data-root", "cache", "--name", "rel")
    assert res.rc == 0, res
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = cli("evaluate", tmp_path / "runs" / "rel", "--device", "cpu", "--output", "ev")
    assert res.rc == 0, res
    want = json.loads((tmp_path / "runs" / "rel" / "test_metrics.json").read_text())
    assert json.loads((elsewhere / "ev" / "metrics.json").read_text())["accuracy"] == want["accuracy"]
