"""Hostile or broken inputs around training and checkpoints: diverged weights (inf in BatchNorm buffers), files
that are not checkpoints, a full disk, a finished run resumed, a kill's leftovers. Each is one clear line, and
nothing non-finite or half-written is left behind."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error
from convclass.checkpoint import save_checkpoint
from convclass.errors import ConvclassError

pytestmark = pytest.mark.timeout(120)
DIGITS = ["--data", "digits", "--device", "cpu", "--threads", "1", "--no-report"]


def _train(tmp_path, *extra) -> list:
    return ["train", *DIGITS, "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", *extra]


def _all_finite(obj) -> bool:
    """Every floating tensor in obj (nested dicts, lists) is finite: written here, not taken from convclass."""
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    return all(_all_finite(v) for v in values)


def _left_in(runs: Path) -> list[Path]:
    return sorted(runs.rglob("*")) if runs.exists() else []


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory):
    """A finished 1-epoch cnn3 run (BatchNorm layers) on digits at 16 px."""
    from convclass import train
    base = tmp_path_factory.mktemp("bn")
    return train(data="digits", model="cnn3", img_size=16, epochs=1, batch_size=64, device="cpu", threads=1,
                 quiet=True, report=False, runs_dir=str(base / "runs"), data_root=str(base / "cache"), name="bn")


@pytest.fixture
def run_copy(tmp_path, bn_run) -> Path:
    return Path(shutil.copytree(bn_run.run_dir, tmp_path / "copy"))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (16, 16), (200, 40, 40)).save(path)
    return path


def test_diverged_batchnorm_buffers_are_never_saved(tmp_path, cli):
    """The issue's run (SGD at lr 50, momentum 0.99) drives running_var to inf within the first epoch: the old
    check covered parameters only, so best.pt/last.pt held inf while the message said nothing non-finite was."""
    res = cli(*_train(tmp_path, "--model", "cnn3", "--img-size", "32", "--epochs", "2", "--seed", "7",
                      "--optimizer", "sgd", "--lr", "50", "--momentum", "0.99"))
    assert_one_line_error(res, "diverged", "running_var", "nothing non-finite was saved")
    for ckpt in (tmp_path / "runs").rglob("*.pt"):
        assert _all_finite(torch.load(ckpt, weights_only=True)), ckpt
    assert _left_in(tmp_path / "runs") == [], "a run that saved no checkpoint leaves no folder"


def test_save_checkpoint_never_writes_a_non_finite_tensor(tmp_path):
    state = {"bn.running_var": torch.tensor([1.0, float("inf")]), "bn.weight": torch.ones(2)}
    with pytest.raises(ConvclassError, match=r"model_state\.bn\.running_var"):
        save_checkpoint({"arch": "cnn3", "model_state": state}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == [], "neither the file nor its temporary file may exist"


def _with_inf_running_var(ckpt: dict) -> dict:
    key = next(k for k in ckpt["model_state"] if k.endswith("running_var"))
    ckpt["model_state"][key][0] = float("inf")
    return ckpt


def test_checkpoints_with_inf_weights_are_refused_everywhere(tmp_path, cli, bn_run, run_copy, photo):
    ckpt = _with_inf_running_var(torch.load(bn_run.run_dir / "best.pt", weights_only=True))
    torch.save(ckpt, tmp_path / "inf.pt")
    torch.save(ckpt["model_state"], tmp_path / "inf_state_dict.pt")  # a bare state dict for --weights
    torch.save(ckpt, run_copy / "last.pt")
    checks = [("evaluate", tmp_path / "inf.pt"), ("predict", tmp_path / "inf.pt", photo),
              ("train", "--resume", run_copy)]
    checks += [_train(tmp_path, "--model", "cnn3", "--img-size", "16", "--epochs", "1", "--weights", w)
               for w in (tmp_path / "inf.pt", tmp_path / "inf_state_dict.pt")]
    for args in checks:
        assert_one_line_error(cli(*args), "inf or nan", "running_var")
    assert _left_in(tmp_path / "runs") == []


def test_an_exploding_loss_is_warned_about(tmp_path, cli):
    """Adam at lr 1e6 ends 'successfully' with a loss of ~1e13: one warning line on stderr says so (and a
    healthy run gets none)."""
    res = cli(*_train(tmp_path, "--model", "shallow", "--epochs", "2"))
    assert res.rc == 0 and "exploded" not in res.err, res
    res = cli(*_train(tmp_path, "--model", "shallow", "--epochs", "2", "--optimizer", "adam", "--lr", "1e6"))
    assert res.rc == 0, res
    warned = [ln for ln in res.err.splitlines() if ln.startswith("warning: the training loss exploded")]
    assert len(warned) == 1 and "--lr" in warned[0], res


def test_an_absurd_learning_rate_is_one_line_and_leaves_no_run_folder(tmp_path, cli):
    assert_one_line_error(cli(*_train(tmp_path, "--model", "shallow", "--lr", "1e300")), "--lr")
    assert _left_in(tmp_path / "runs") == []


def test_a_run_failing_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, cli, monkeypatch):
    import convclass.training.loop as loop

    def fail(*a, **k):
        raise ConvclassError("the first epoch failed")
    monkeypatch.setattr(loop, "train_one_epoch", fail)
    assert_one_line_error(cli(*_train(tmp_path, "--model", "shallow", "--epochs", "1")), "first epoch failed")
    assert _left_in(tmp_path / "runs") == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["jpeg", "png", "garbage", "empty", "fifo"])
def test_files_that_are_not_checkpoints_are_named_for_what_they_are(tmp_path, cli, photo, kind):
    """`predict photo.jpg other.jpg` (the run folder forgotten) used to say the JPEG 'holds pickled Python
    objects'; a FIFO used to block the load forever."""
    if kind == "jpeg":
        bad = photo
    elif kind == "png":
        bad = tmp_path / "image.png"
        Image.new("RGB", (8, 8)).save(bad)
    else:
        bad = tmp_path / f"{kind}.pt"
        if kind == "fifo":
            os.mkfifo(bad)
        else:
            bad.write_bytes(b"" if kind == "empty" else b"random bytes, not a checkpoint " * 4)
    for args in (("predict", bad, photo), ("evaluate", bad)):
        res = cli(*args)
        assert_one_line_error(res, bad.name)
        assert "pickled" not in res.err
        line = res.err.strip()
        assert "not a convclass checkpoint or run folder" in line or "not a regular file" in line, line
    if kind in ("jpeg", "png"):
        assert "image" in line and "convclass predict runs/NAME" in line, line


def test_empty_weights_file_is_one_line(tmp_path, cli):
    (tmp_path / "empty.pt").write_bytes(b"")
    res = cli(*_train(tmp_path, "--model", "shallow", "--weights", tmp_path / "empty.pt"))
    assert_one_line_error(res, "--weights", "empty.pt", "empty")
    assert _left_in(tmp_path / "runs") == []


def _disk_full(monkeypatch, when):
    """os.fsync (the last step of every checkpoint write) fails with ENOSPC whenever when() is true."""
    monkeypatch.undo()
    real = os.fsync

    def fsync(fd):
        if when():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_while_saving_is_one_line_and_resumable(tmp_path, cli, monkeypatch):
    run = tmp_path / "runs" / "full"
    args = _train(tmp_path, "--model", "shallow", "--epochs", "2", "--name", "full")
    _disk_full(monkeypatch, lambda: True)  # the first checkpoint already fails: nothing to keep
    assert_one_line_error(cli(*args), "no space left", "free", "run the command again")
    assert _left_in(tmp_path / "runs") == []
    _disk_full(monkeypatch, lambda: (run / "last.pt").exists())  # epoch 1 saved, epoch 2 fails
    res = cli(*args)
    assert_one_line_error(res, str(run), ".pt", "MiB free", f"--resume {run}")
    assert not list(run.glob(".*.tmp")), "no temporary file of the failed write is left"
    monkeypatch.undo()  # space freed
    res = cli("train", "--resume", run)
    assert res.rc == 0, res
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1


def test_resuming_a_finished_run_says_so_and_changes_nothing(cli, run_copy):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    res = cli("train", "--resume", run_copy)
    assert res.rc == 0, res
    assert "already complete" in res.out and f"--resume {run_copy} --epochs" in res.out, res
    assert " at epoch " not in res.out, res
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before, "it re-scored the run"


def test_orphaned_checkpoint_temp_files_are_cleaned_on_resume(cli, run_copy):
    """A kill mid-write leaves .last.pt.XXXX.tmp (often as large as the checkpoint); the next resume removes it."""
    orphans = [run_copy / ".last.pt.k3j2h1x0.tmp", run_copy / ".best.pt.a8b7c6d5.tmp"]
    for p in orphans:
        p.write_bytes(b"\0" * 1024)
    res = cli("train", "--resume", run_copy)
    assert res.rc == 0, res
    assert not any(p.exists() for p in orphans)
    assert (run_copy / "last.pt").exists() and (run_copy / "config.yaml").exists()
