"""--ema DECAY: validation and best.pt use an exponential moving average of the weights; training itself is
unchanged; a run stopped and resumed equals the uninterrupted one bit for bit."""
from __future__ import annotations

import pytest
import torch

from conftest import assert_one_line_error
from convclass.checkpoint import load_checkpoint
from convclass import train
from test_training import digits_run, read_metrics

EMA = dict(ema=0.9, epochs=3, optimizer="sgd", lr=0.05, model="cnn3")  # cnn3: BatchNorm buffers to average


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ema")
    full = digits_run(tmp, name="full", **EMA)
    plain = digits_run(tmp, name="plain", **{**EMA, "ema": None})
    cut = digits_run(tmp, name="cut", callbacks=[lambda row, run: row["epoch"] == 1], **EMA)
    resumed = train(resume=cut.run_dir, quiet=True)
    one = digits_run(tmp, name="one", **{**EMA, "epochs": 1})  # best.pt and last.pt of the same epoch
    return full, plain, resumed, one


def test_ema_changes_what_is_validated_not_how_it_trains(runs):
    full, plain, _, _ = runs
    for a, b in zip(full.history, plain.history):
        assert (a["train_loss"], a["train_acc"]) == (b["train_loss"], b["train_acc"])  # same training steps
    assert [r["val_loss"] for r in full.history] != [r["val_loss"] for r in plain.history]
    assert _equal(load_checkpoint(full.run_dir / "last.pt")["model_state"],
                  load_checkpoint(plain.run_dir / "last.pt")["model_state"])
    assert not _equal(load_checkpoint(full.run_dir / "best.pt")["model_state"],
                      load_checkpoint(plain.run_dir / "best.pt")["model_state"])


def test_best_pt_holds_the_averaged_weights_that_were_validated(runs):
    from convclass.data import prepare_data
    from convclass.models import create_model
    from convclass.training import validate
    _, _, _, one = runs
    best, last = load_checkpoint(one.run_dir / "best.pt"), load_checkpoint(one.run_dir / "last.pt")
    assert best["epoch"] == last["epoch"] == 0
    assert _equal(best["model_state"], last["ema_state"]["weights"])
    assert not _equal(best["model_state"], last["model_state"])  # last.pt keeps the trained weights to resume
    model = create_model(best["arch"], **best["arch_args"])
    model.load_state_dict(best["model_state"])
    data = prepare_data("digits", data_root=str(one.run_dir.parents[1] / "cache"), seed=0, default_size=32,
                        verbose=False)
    val, _ = validate(model, data.val, data, torch.device("cpu"), 256)
    assert val["acc"] == pytest.approx(best["metrics"]["val_acc"])


def test_stop_and_resume_with_ema_is_bit_exact(runs):
    full, _, resumed, _ = runs
    assert read_metrics(resumed.run_dir) == read_metrics(full.run_dir)
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(full.run_dir / name), load_checkpoint(resumed.run_dir / name)
        assert _equal(a["model_state"], b["model_state"]), name
    a, b = load_checkpoint(full.run_dir / "last.pt"), load_checkpoint(resumed.run_dir / "last.pt")
    assert _equal(a["ema_state"]["weights"], b["ema_state"]["weights"])  # only last.pt carries what resumes
    assert a["ema_state"]["updates"] == b["ema_state"]["updates"] > 0
    assert resumed.test_metrics["accuracy"] == full.test_metrics["accuracy"]


def test_ema_warms_up_and_copies_integer_buffers():
    from convclass.training.hooks.ema import EMA as Ema
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = Ema(model, decay=0.999)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 7
    ema.on_step_end(None)
    # the first update keeps min(0.999, 1/10) of the old average
    assert torch.allclose(ema.averaged[0].weight, 0.1 * w0 + 0.9 * (w0 + 1))
    assert int(ema.averaged[1].num_batches_tracked) == 7
    assert ema.current_decay() == pytest.approx(2 / 11)


@pytest.mark.parametrize("value,says", [("1.5", "less than 1"), ("-0.1", "0 or more"), ("nan", "finite")])
def test_ema_decay_outside_0_1_is_a_one_line_error(cli, tmp_path, value, says):
    res = cli("train", "--data", "digits", "--ema", value, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(res, "--ema must be", says)
    assert not (tmp_path / "runs").exists()
