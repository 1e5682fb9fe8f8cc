"""Multi-label training: sigmoid + BCE (pos_weight, smoothing), mixed label rows, best.pt by macro mAP, per-label
thresholds tuned on validation and stored in best.pt."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from convclass import train
from convclass.checkpoint import load_checkpoint
from convclass.data import mix_batch
from convclass.training.losses import loss_function, loss_weights, sample_weights
from multilabel_synth import write_multilabel_csv


def _train(csv, tmp, **extra):
    options = dict(model="shallow", epochs=2, batch_size=8, lr=0.01, device="cpu", quiet=True, report=False)
    return train(data=str(csv), runs_dir=str(tmp / "runs"), data_root=str(tmp / "cache"), **{**options, **extra})


@pytest.fixture(scope="module")
def ml_csv(tmp_path_factory):
    return write_multilabel_csv(tmp_path_factory.mktemp("ml"), n=60, rare=0.2)


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory, ml_csv):
    return _train(ml_csv, tmp_path_factory.mktemp("run"))


@pytest.mark.timeout(120)
def test_multilabel_run_keeps_best_by_map_and_stores_thresholds(ml_run):
    rows = ml_run.history
    assert all(0 <= r["val_map"] <= 1 for r in rows)
    best = load_checkpoint(ml_run.run_dir / "best.pt")
    assert best["task"] == "multi" and len(best["thresholds"]) == 3
    assert all(0 < t < 1 for t in best["thresholds"])
    assert best["metrics"]["val_map"] == max(r["val_map"] for r in rows)
    m = json.loads((ml_run.run_dir / "test_metrics.json").read_text())
    assert m["task"] == "multi" and 0 <= m["map"] <= 1 and m["thresholds"] == best["thresholds"]
    assert {"f1_micro", "subset_accuracy", "hamming_loss", "per_label"} <= set(m)
    assert "val_map" in (ml_run.run_dir / "metrics.csv").read_text().splitlines()[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("extra", [{"balance": "loss"}, {"label_smoothing": 0.2}, {"mixup": 0.4}],
                         ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_each_option_reaches_the_bce_loss(tmp_path, ml_csv, extra, monkeypatch):
    seen = []  # (target, pos_weight) of every BCE computed in training
    real = F.binary_cross_entropy_with_logits

    def spy(logits, target, *args, **kw):
        seen.append((target, kw.get("pos_weight")))
        return real(logits, target, *args, **kw)
    monkeypatch.setattr(F, "binary_cross_entropy_with_logits", spy)
    res = _train(ml_csv, tmp_path, epochs=1, **extra)
    assert math.isfinite(res.history[0]["train_loss"]) and seen
    if "balance" in extra:
        assert any(w is not None and float(w.max()) > 1 for _, w in seen), "no pos_weight"
    if "label_smoothing" in extra:  # 0/1 targets moved to 0.1/0.9
        assert any(bool(((t - 0.1).abs() < 1e-6).any()) and float(t.max()) <= 0.9 + 1e-6 for t, _ in seen)
    if "mixup" in extra:
        assert any(bool(((t > 0.01) & (t < 0.99)).any()) for t, _ in seen), "no mixed label rows"


def test_losses_and_weights_for_label_rows():
    y = torch.tensor([[1., 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]])
    w = loss_weights(y, 3)
    assert w.tolist() == pytest.approx([1 / 3, 3.0, 4.0])  # negatives/positives (none: over 1)
    s = sample_weights(y, 3)
    assert s.tolist() == pytest.approx([1 / 3, 1.0, 1 / 3, 1 / 3])  # rarest label; none: as the commonest
    out = torch.zeros(4, 3)
    assert loss_function(True, None, 0.0)(out, y).item() == pytest.approx(math.log(2))
    x = torch.rand(4, 3, 8, 8)
    _, target = mix_batch(x, y, 3, 0.4, 0.0, torch.Generator().manual_seed(0))
    assert target.shape == (4, 3) and float(target.max()) <= 1


def test_single_label_loss_is_unchanged():
    out, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    w = torch.tensor([1., 2, 3])
    assert loss_function(False, w, 0.1)(out, y) == F.cross_entropy(out, y, weight=w, label_smoothing=0.1)


@pytest.mark.timeout(240)
def test_cv_on_multilabel_data_reports_map(tmp_path, ml_csv):
    from convclass.pipeline.crossval import cross_validate
    r = cross_validate(data=str(ml_csv), folds=2, model="shallow", epochs=1, batch_size=8, device="cpu", quiet=True,
                       report=False, runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"))
    assert {"map", "f1_micro", "subset_accuracy"} <= set(r["metrics"]) and "accuracy" not in r["metrics"]
    assert len(r["folds"]) == 2 and all(0 <= f["map"] <= 1 for f in r["folds"])


@pytest.mark.timeout(120)
def test_cli_trains_multilabel_and_task_single_trains_one_class_per_cell(cli, tmp_path, ml_csv):
    common = ["--model", "shallow", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-report",
              "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache"]
    res = cli("train", "--data", ml_csv, "--name", "multi", *common)
    assert res.rc == 0, res.err
    assert "test mAP" in res.out and load_checkpoint(tmp_path / "runs" / "multi" / "best.pt")["task"] == "multi"
    csv = ml_csv.parent / "nonempty.csv"  # --task single needs a class in every cell
    csv.write_text(ml_csv.read_text().replace(',""', ',"red"'))
    res = cli("train", "--data", csv, "--task", "single", "--name", "single", *common)
    assert res.rc == 0, res.err
    best = load_checkpoint(tmp_path / "runs" / "single" / "best.pt")
    assert best["task"] == "single" and "red|green" in best["classes"] and "test accuracy" in res.out


def test_compare_shows_test_map_of_a_multilabel_run(ml_run):
    from convclass.reporting.compare import compare_runs, format_comparison
    table = format_comparison(compare_runs([ml_run.run_dir], output=ml_run.run_dir / "cmp.png"))
    line = next(ln for ln in table.splitlines() if ln.startswith("test mAP"))
    best = load_checkpoint(ml_run.run_dir / "best.pt")["metrics"]["test_map"]
    assert f"{best:.4f}" in line


@pytest.mark.timeout(240)
def test_tune_maximises_validation_map_of_multilabel_runs(tmp_path, ml_csv):
    from convclass.tuning.space import Param
    from convclass.tuning.sweep import tune
    r = tune(trials=1, space=[Param("lr", low=0.005, high=0.02, log=True)], log=lambda *_: None, data=str(ml_csv),
             model="shallow", epochs=1, batch_size=8, device="cpu", runs_dir=str(tmp_path / "runs"),
             data_root=str(tmp_path / "cache"))
    run = next((tmp_path / "runs").glob("tune-*/trial-0000"))
    assert r.best_value == pytest.approx(load_checkpoint(run / "best.pt")["metrics"]["val_map"])


# two torchrun ranks: ~1 min on a loaded 2-core machine; failed once inside the full file, passes alone (unexplained)
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_validation_map_covers_the_whole_split(tmp_path, ml_csv):
    """Two gloo ranks each score half the validation split; the mAP they report is the whole split's."""
    from convclass.evaluation import evaluate
    from test_distributed import _train_two_ranks
    two = _train_two_ranks(tmp_path, "--data", ml_csv, "--model", "shallow", "--epochs", "1", "--threads", "1",
                           "--batch-size", "16", "--no-report", "--quiet", "--data-root", tmp_path / "cache")
    reported = load_checkpoint(two / "last.pt")["metrics"]["val_map"]
    m = evaluate(two / "last.pt", split="val", output=two / "eval-val", device="cpu")
    assert m["n"] >= 4 and reported == pytest.approx(m["map"], abs=1e-6)
