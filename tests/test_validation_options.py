"""Validation you can predict (issue 15 item 4): evaluation batches follow the training chunk (or
--eval-batch-size), --val-every N skips validation between every N-th epoch and the last, --val-max N scores a
fixed stratified sample, and validation, the test pass and `evaluate` show a progress bar on a terminal."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from convclass.checkpoint import load_checkpoint
from convclass.training import Hook, train

pytestmark = pytest.mark.timeout(120)


class EvalRecorder(Hook):
    """Per validated epoch (0-based): the batch sizes and the images the model saw in eval mode."""

    def __init__(self):
        self.sizes, self.images, self.totals = {}, {}, {}

    def on_fit_start(self, state):
        def record(module, args):
            if not module.training:
                self.sizes.setdefault(state.epoch, []).append(len(args[0]))
                self.images.setdefault(state.epoch, []).append(args[0].detach().clone())
        state.eval_model.register_forward_pre_hook(record)

    def on_val_progress(self, state, done, total):
        self.totals.setdefault(state.epoch, []).append((done, total))


def run(rgb_folder, tmp_path, hooks=(), **kw):
    args = dict(data=str(rgb_folder), model="shallow", epochs=1, batch_size=8, lr=0.01, device="cpu",
                report=False, quiet=True, val_split=0.5, runs_dir=str(tmp_path / "runs"),
                data_root=str(tmp_path / "cache"))
    return train(hooks=list(hooks), **{**args, **kw})


@pytest.mark.parametrize("options, size", [({}, 8), ({"micro_batch": 4}, 4), ({"eval_batch_size": 5}, 5)])
def test_validation_batches_follow_the_training_chunk(rgb_folder, tmp_path, options, size):
    rec = EvalRecorder()
    run(rgb_folder, tmp_path, [rec], **options)
    sizes = rec.sizes[0]                                # 15 validation images: half of 3 x 10 (2 per class are test)
    assert sum(sizes) == 15 and max(sizes) == size and sizes.count(size) == 15 // size


def test_evaluate_scores_in_the_runs_batch_unless_told(monkeypatch):
    from convclass.errors import ConvclassError
    from convclass.evaluation.evaluate import eval_batch_size
    assert eval_batch_size({"batch_size": 32, "micro_batch": None, "eval_batch_size": None}) == 32
    assert eval_batch_size({"batch_size": 32, "micro_batch": 8}) == 8
    assert eval_batch_size({"batch_size": 32, "eval_batch_size": 100}) == 100
    assert eval_batch_size({"batch_size": "a lot", "micro_batch": 10**12}) == 32   # a hostile config
    assert eval_batch_size(None, 7) == 7
    with pytest.raises(ConvclassError, match="at least 1"):
        eval_batch_size(None, 0)


def test_val_every_validates_every_nth_epoch_and_the_last(rgb_folder, tmp_path):
    rec = EvalRecorder()
    res = run(rgb_folder, tmp_path, [rec], epochs=3, val_every=2)
    assert sorted(rec.totals) == [1, 2]                  # epochs 2 and 3 (0-based 1 and 2), not epoch 1
    h = res.history
    assert math.isnan(h[0]["val_acc"]) and math.isnan(h[0]["val_loss"])
    assert all(math.isfinite(r["val_acc"]) for r in h[1:])
    best = load_checkpoint(res.run_dir / "best.pt")
    assert best["metrics"]["epoch"] in (2, 3) and math.isfinite(best["metrics"]["val_acc"])
    csv_rows = (res.run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_rows) == 4 and ",nan," in csv_rows[1]


def test_best_checkpoint_and_patience_count_validated_epochs_only(rgb_folder, tmp_path, monkeypatch):
    from convclass.training import loop
    accs = iter([0.5, 0.6, 0.55, 0.55, 0.55])
    seen = []

    def scripted(*args, **kw):
        seen.append(1)
        return {"loss": 1.0, "acc": next(accs)}, None
    monkeypatch.setattr(loop, "validate", scripted)
    res = run(rgb_folder, tmp_path, epochs=10, val_every=2, patience=2)
    # validated after epochs 2, 4 (best), 6 and 8 (two without improvement: stop); never after 1, 3, 5, 7
    assert len(seen) == 4 and len(res.history) == 8
    assert [math.isnan(r["val_acc"]) for r in res.history] == [True, False] * 4
    best = load_checkpoint(res.run_dir / "best.pt")
    assert best["metrics"]["epoch"] == 4 and best["metrics"]["val_acc"] == 0.6


def test_val_max_scores_the_same_stratified_sample_every_epoch(rgb_folder, tmp_path, capsys):
    rec = EvalRecorder()
    run(rgb_folder, tmp_path, [rec], epochs=2, val_max=10, eval_batch_size=32, quiet=False)
    assert rec.totals[0][-1] == (10, 10) and rec.totals[1][-1] == (10, 10)
    first, second = torch.cat(rec.images[0]), torch.cat(rec.images[1])
    assert len(first) == 10 and torch.equal(first, second)
    out = capsys.readouterr().out
    assert out.count("validating on 10 of the 15 validation images") == 1


def test_stratified_sample_is_exact_and_keeps_class_shares():
    from convclass.training.val_sample import stratified_sample
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    idx = stratified_sample(labels, 10, seed=3)
    assert len(idx) == 10 and len(set(idx)) == 10
    assert np.bincount(labels[idx]).tolist() == [5, 3, 2]
    odd = stratified_sample(labels, 7, seed=3)            # shares 3.5, 2.1, 1.4: largest remainders round up
    assert np.bincount(labels[odd]).tolist() == [4, 2, 1]
    assert np.array_equal(stratified_sample(labels, 7, seed=3), odd)
    assert len(stratified_sample(labels, 500, seed=3)) == 100


def test_validation_and_test_pass_show_bars_on_a_terminal_unless_quiet(rgb_folder, tmp_path, monkeypatch, capsys):
    from convclass import train as train_and_test
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    common = dict(data=str(rgb_folder), model="shallow", epochs=1, batch_size=8, device="cpu", report=False,
                  val_split=0.5, runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"))
    train_and_test(quiet=False, **common)
    err = capsys.readouterr().err
    assert "validation:   0%" in err and "0/15 [" in err   # a bar over the 15 validation images, with an ETA
    assert "test:   0%" in err and "0/6 [" in err           # and one over the 6 test images
    train_and_test(quiet=True, **common)
    err = capsys.readouterr().err
    assert "validation" not in err and "test" not in err and "img" not in err


def test_evaluate_shows_a_bar_and_takes_eval_batch_size(trained_run, monkeypatch, tmp_path, capsys):
    from convclass.cli import build_parser
    from convclass.evaluation import evaluate
    from convclass.inference import LoadedModel
    assert build_parser().parse_args(["evaluate", "RUN", "--eval-batch-size", "3"]).batch_size == 3
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(sys.modules["convclass.evaluation.evaluate"], "plot_confusion_matrix", lambda *a, **k: None)
    sizes = []
    real = LoadedModel.predict_proba
    monkeypatch.setattr(LoadedModel, "predict_proba", lambda self, x, bs=256: sizes.append(len(x)) or real(self, x, bs))
    evaluate(trained_run.run_dir, batch_size=3, output=tmp_path / "ev")
    assert "evaluate test:   0%" in capsys.readouterr().err and max(sizes) == 3
    sizes.clear()
    evaluate(trained_run.run_dir, split="train", output=tmp_path / "ev")   # in the run's training batch, 16
    assert max(sizes) == 16
