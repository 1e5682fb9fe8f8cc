"""The training loop: every optimizer, schedule and augmentation runs and checkpoints cleanly; seeds reproduce."""
from __future__ import annotations

import csv
import math
import re
import shlex
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from synth import write_class_folders

from convclass.checkpoint import load_checkpoint
from convclass.data import AUGMENTATIONS, build_augment, mix_batch
from convclass.errors import ConvclassError
from convclass import train

# One run per optimizer, each paired with a different schedule, so 5 short runs cover both lists.
PAIRS = [("sgd", "step"), ("adam", "multistep"), ("adamw", "cosine"), ("rmsprop", "onecycle"),
         ("adagrad", "plateau")]


def digits_run(tmp_path, **kw):
    args = dict(data="digits", model="shallow", epochs=2, batch_size=64, device="cpu", threads=1, quiet=True,
                report=False, runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"))
    args.update(kw)
    return train(**args)


def read_metrics(run_dir, drop=("seconds",)) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def assert_finite_weights_only_checkpoint(path):
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code, by construction
    ck = load_checkpoint(path)
    assert set(raw) == set(ck)
    assert all(torch.isfinite(t).all() for t in ck["model_state"].values() if t.is_floating_point())
    return ck


@pytest.mark.parametrize("optimizer,schedule", PAIRS)
def test_optimizer_and_schedule_train_and_checkpoint(tmp_path, optimizer, schedule):
    lr = {"sgd": 0.05, "adagrad": 0.05}.get(optimizer, 3e-3)
    res = digits_run(tmp_path, optimizer=optimizer, schedule=schedule, lr=lr, step_size=1, gamma=0.5,
                     milestones=[1], warmup_epochs=0.5)
    rows = read_metrics(res.run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert res.test_metrics["accuracy"] > 0.3  # 10 classes: chance is 0.1
    for name in ("last.pt", "best.pt"):
        ck = assert_finite_weights_only_checkpoint(res.run_dir / name)
        assert ck["config"]["optimizer"] == optimizer and ck["config"]["schedule"] == schedule
    lrs = [float(r["lr"]) for r in rows]
    if schedule in ("step", "multistep"):  # logged lr is the one each epoch trained with
        assert lrs == pytest.approx([lr, lr * 0.5])
    if schedule in ("cosine", "onecycle"):  # per-batch schedules end near zero
        assert lrs[-1] < 0.05 * lr


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_resume_of_per_batch_schedules_matches_uninterrupted(tmp_path, schedule):
    common = dict(schedule=schedule, warmup_epochs=0.5, epochs=3, lr=3e-3)
    full = digits_run(tmp_path, name="full", **common)
    cut = digits_run(tmp_path, name="cut", callbacks=[lambda row, run: row["epoch"] == 1], **common)
    assert len(read_metrics(cut.run_dir)) == 1
    resumed = train(resume=cut.run_dir, quiet=True)
    assert resumed.run_dir == cut.run_dir
    assert read_metrics(resumed.run_dir) == read_metrics(full.run_dir)
    a, b = load_checkpoint(full.run_dir / "last.pt"), load_checkpoint(cut.run_dir / "last.pt")
    assert a["model_state"].keys() == b["model_state"].keys()
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    assert a["scheduler_state"]["last_epoch"] == b["scheduler_state"]["last_epoch"]


def test_extending_a_finished_onecycle_run_is_a_clear_error(tmp_path):
    res = digits_run(tmp_path, schedule="onecycle", epochs=1)
    with pytest.raises(ConvclassError, match="onecycle"):
        train(resume=res.run_dir, epochs=2, quiet=True)


def test_same_seed_same_run_and_other_seed_differs(tmp_path):
    a = digits_run(tmp_path, name="a", seed=3, model="cnn3")
    b = digits_run(tmp_path, name="b", seed=3, model="cnn3")
    c = digits_run(tmp_path, name="c", seed=4, model="cnn3")
    assert read_metrics(a.run_dir) == read_metrics(b.run_dir)
    assert read_metrics(a.run_dir) != read_metrics(c.run_dir)
    sa, sb = load_checkpoint(a.run_dir / "last.pt")["model_state"], load_checkpoint(b.run_dir / "last.pt")["model_state"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def skewed_folder(tmp_path_factory) -> Path:
    """red 20, green and blue 8 images each: class weights are not all 1, so balancing has work to do."""
    root = tmp_path_factory.mktemp("skewed") / "colours"
    write_class_folders(root, per_class=20, classes=["red"])
    write_class_folders(root, per_class=8, classes=["green", "blue"], seed=1)
    return root


def one_epoch_on(folder, tmp, **extra):
    return train(data=str(folder), model="shallow", epochs=1, batch_size=8, device="cpu", quiet=True, report=False,
                 runs_dir=str(tmp / "runs"), data_root=str(tmp / "cache"), **extra)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, skewed_folder):
    return one_epoch_on(skewed_folder, tmp_path_factory.mktemp("plain"))


@pytest.mark.parametrize("extra", [{"augment": a} for a in AUGMENTATIONS if a != "none"]
                         + [{"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.2, "cutmix": 1.0},
                            {"balance": "loss"}, {"balance": "sampler"}, {"label_smoothing": 0.1, "grad_clip": 1.0}],
                         ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_each_regulariser_trains_and_changes_the_run(tmp_path, skewed_folder, plain_run, extra, monkeypatch):
    losses = []  # (target, weight, label_smoothing) of every loss computed, training and validation
    real = F.cross_entropy

    def spy(logits, target, weight=None, *args, **kw):
        losses.append((target, weight, kw.get("label_smoothing", 0.0)))
        return real(logits, target, weight, *args, **kw)
    monkeypatch.setattr(F, "cross_entropy", spy)
    res = one_epoch_on(skewed_folder, tmp_path, **extra)
    row = res.history[0]
    assert math.isfinite(row["train_loss"]) and 0 <= row["val_acc"] <= 1
    new = assert_finite_weights_only_checkpoint(res.run_dir / "last.pt")["model_state"]
    # Same data and seed as the plain run: an option that was ignored would leave the weights equal bit for bit.
    old = load_checkpoint(plain_run.run_dir / "last.pt")["model_state"]
    assert not all(torch.equal(old[k], new[k]) for k in old), f"{extra} did not change training"
    if extra.get("mixup") or extra.get("cutmix"):
        assert any(t.dim() == 2 and bool((t.max(1).values < 1).any()) for t, _, _ in losses), "no soft targets"
    if extra.get("balance") == "loss":
        assert any(w is not None and float(w.max()) > float(w.min()) for _, w, _ in losses), "no class weights"
    if "label_smoothing" in extra:
        assert any(ls == extra["label_smoothing"] for _, _, ls in losses), "no label smoothing"


def test_unknown_augmentation_is_a_user_error():
    with pytest.raises(ConvclassError, match="augmentation"):
        build_augment("flip-crop-rotate", 16, 3)


@pytest.mark.parametrize("mixup,cutmix", [(0.4, 0.0), (0.0, 1.0)])
def test_mix_batch_gives_soft_targets_that_sum_to_one(mixup, cutmix):
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    y = torch.arange(8) % 4
    xm, t = mix_batch(x, y, 4, mixup, cutmix)
    assert xm.shape == x.shape and t.shape == (8, 4)
    assert torch.allclose(t.sum(1), torch.ones(8))
    assert (t.max(1).values < 1).any(), "nothing was mixed"


def test_divergence_stops_with_a_clear_error_and_saves_nothing(tmp_path):
    with pytest.raises(ConvclassError) as e:
        digits_run(tmp_path, optimizer="sgd", lr=1e6, epochs=3, name="boom")
    msg = str(e.value)
    assert "diverged" in msg and "--lr" in msg and "\n" not in msg
    run = tmp_path / "runs" / "boom"
    assert not list(run.glob("*.pt")), "a diverged run must not write checkpoints"


def test_divergence_after_a_good_epoch_keeps_the_good_checkpoint(tmp_path):
    # Epoch 1 trains at lr 0.01; the step schedule then multiplies it by 1e8, and epoch 2 blows up.
    with pytest.raises(ConvclassError, match="diverged") as e:
        digits_run(tmp_path, optimizer="sgd", lr=0.01, schedule="step", step_size=1, gamma=1e8, epochs=3,
                   name="late")
    run = tmp_path / "runs" / "late"
    assert "last.pt" in str(e.value)
    for name in ("last.pt", "best.pt"):
        ck = assert_finite_weights_only_checkpoint(run / name)
        assert ck["epoch"] == 0  # still the good epoch 1
    assert [int(r["epoch"]) for r in read_metrics(run)] == [1]


def test_early_stopping(tmp_path):
    res = digits_run(tmp_path, lr=0.0, optimizer="sgd", epochs=6, patience=2)
    # lr 0 never improves on epoch 1, so epochs 2 and 3 are the two bad ones.
    assert len(res.history) == 3


def test_make_demo_command_reaches_097_on_digits(tmp_path, cli):
    """The exact `make demo` training command (read from the Makefile) ends with its accuracy and run folder."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if "convclass train" in ln and "digits" in ln)
    args = shlex.split(line.split("convclass", 1)[1])
    res = cli(*args, "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--no-report",
              "--threads", "1")
    assert res.rc == 0, res
    last = res.out.strip().splitlines()[-1]
    m = re.fullmatch(r"test accuracy: (0\.\d{4})  run folder: (.+)", last)
    assert m, last
    assert float(m.group(1)) >= 0.97 and Path(m.group(2)).is_dir()


class _Killed(Exception):
    pass


def test_dying_between_the_two_checkpoint_writes_loses_nothing(tmp_path, monkeypatch):
    """Die right after the first checkpoint write of the last epoch (a kill between best.pt and last.pt):
    the resumed run must still end with the uninterrupted run's best.pt."""
    import convclass.training.fit as fit
    ref = digits_run(tmp_path, name="ref")
    assert ref.history[1]["val_acc"] > ref.history[0]["val_acc"], "epoch 2 must improve for this test to bite"
    real_save = fit.save_checkpoint

    def save_then_die(payload, path):
        real_save(payload, path)
        if payload["epoch"] == 1:
            raise _Killed(path)
    monkeypatch.setattr(fit, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        digits_run(tmp_path, name="cut")
    monkeypatch.setattr(fit, "save_checkpoint", real_save)
    run = tmp_path / "runs" / "cut"
    train(resume=run, quiet=True)
    for name in ("best.pt", "last.pt"):
        a, b = load_checkpoint(run / name), load_checkpoint(ref.run_dir / name)
        assert a["epoch"] == b["epoch"] == 1, name
        assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
