"""What a new user gets wrong: each mistake is one `error: ...` line and a non-zero exit, never a traceback.

Also: checkpoints that would run code when unpickled are refused by every command that reads checkpoints.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import assert_one_line_error, run_cli_subprocess

DIGITS = ["--data", "digits", "--model", "shallow", "--epochs", "1", "--device", "cpu", "--no-report"]


def _train_args(tmp_path, *extra):
    return ["train", *DIGITS, "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", *extra]


@pytest.mark.parametrize("extra,needle", [
    (["--data", "/nonexistent/photos"], "/nonexistent/photos"),
    (["--model", "resnet9000"], "--model must be a model from `convclass models`"),
    (["--optimizer", "adamax"], "optimizer"),
    (["--schedule", "warmup-cosine"], "schedule"),
    (["--augment", "flip"], "--augment must be one of"),
    (["--balance", "oversample"], "balance"),
    (["--channels", "2"], "channels"),
    (["--model-arg", "width"], "key=value"),
    (["--model-arg", "widht=2"], "model argument"),
    (["--config", "/nonexistent/config.yaml"], "config"),
    (["--epochs", "0"], "epochs"),
    (["--batch-size", "0"], "batch"),
], ids=lambda v: v if isinstance(v, str) else "_".join(map(str, v)).strip("-"))
def test_bad_train_options(tmp_path, cli, extra, needle):
    res = cli(*_train_args(tmp_path, *extra))
    assert_one_line_error(res, needle)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a failed start must not leave a run folder behind"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_machine(tmp_path, cli):
    assert_one_line_error(cli(*_train_args(tmp_path, "--device", "cuda")), "cuda")


def test_missing_runs_and_images(tmp_path, cli, trained_run):
    run = trained_run.run_dir
    assert_one_line_error(cli("predict", run, tmp_path / "missing.png"), "missing.png")
    assert_one_line_error(cli("predict", run, str(tmp_path / "nothing-*.jpg")), "nothing-")
    assert_one_line_error(cli("predict", tmp_path / "no-such-run", tmp_path), "no-such-run")
    assert_one_line_error(cli("evaluate", tmp_path / "no-such-run"), "no-such-run")
    assert_one_line_error(cli("evaluate", tmp_path), "best.pt")  # a folder that is not a run
    assert_one_line_error(cli("train", "--resume", tmp_path / "no-such-run"), "no-such-run")


class _RunsCode:
    """Unpickling this creates `marker`: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _malicious_checkpoints(tmp_path, trained_run) -> tuple[list, object]:
    marker = tmp_path / "PWNED"
    good = torch.load(trained_run.run_dir / "best.pt", weights_only=True)
    zip_ckpt = tmp_path / "evil.pt"  # torch's zip format, a real convclass checkpoint plus one bad object
    torch.save({**good, "metrics": _RunsCode(marker)}, zip_ckpt)
    legacy = tmp_path / "evil_legacy.pt"  # a raw pickle stream, the pre-1.6 format torch.load also reads
    with open(legacy, "wb") as f:
        pickle.dump({"arch": "shallow", "model_state": _RunsCode(marker)}, f)
    # The payload is live: an unsafe load really runs it (in a child process, so nothing leaks into this one).
    code = f"import torch; torch.load({str(zip_ckpt)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                   cwd=os.path.dirname(__file__))
    assert marker.exists(), "the crafted checkpoint does not run code; the test would prove nothing"
    marker.unlink()
    return [zip_ckpt, legacy], marker


def test_checkpoints_that_run_code_are_refused(tmp_path, cli, trained_run, rgb_folder):
    evil_files, marker = _malicious_checkpoints(tmp_path, trained_run)
    image = next(rgb_folder.glob("red/*.png"))
    for evil in evil_files:
        assert_one_line_error(cli("evaluate", evil), "refusing")
        assert_one_line_error(cli("predict", evil, image), "refusing")
        run = tmp_path / f"run-{evil.stem}"  # a run folder whose last.pt was swapped
        run.mkdir()
        shutil.copy(trained_run.run_dir / "config.yaml", run / "config.yaml")
        shutil.copy(evil, run / "last.pt")
        assert_one_line_error(cli("train", "--resume", run), "refusing")
        shutil.copy(evil, run / "best.pt")
        assert_one_line_error(cli("evaluate", run), "refusing")
        assert not marker.exists(), f"loading {evil.name} ran its code"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated", "state_dict_only"])
def test_unreadable_checkpoints(tmp_path, cli, trained_run, content):
    bad = tmp_path / "bad.pt"
    best = (trained_run.run_dir / "best.pt").read_bytes()
    if content == "truncated":
        bad.write_bytes(best[: len(best) // 2])
    elif content == "state_dict_only":  # safe to load, but not a convclass checkpoint
        torch.save(torch.load(trained_run.run_dir / "best.pt", weights_only=True)["model_state"], bad)
    else:
        bad.write_bytes(content)
    assert_one_line_error(cli("evaluate", bad), "bad.pt")


def test_divergence_from_a_real_process(tmp_path):
    """`--lr 1e6` with SGD: stopped within the first epoch, one line, exit 2, no checkpoint written."""
    res = run_cli_subprocess(*_train_args(tmp_path, "--optimizer", "sgd", "--lr", "1e6", "--epochs", "3",
                                          "--name", "boom", "--threads", "1"))
    assert res.returncode == 2, res.stderr
    assert_one_line_error(res, "diverged", "--lr")
    assert "epoch 1," in res.stderr  # within a few steps, not after the full run
    assert not list((tmp_path / "runs" / "boom").glob("*.pt"))


@pytest.mark.parametrize("edit", ["other_arch", "other_classes", "no_preprocess"])
def test_checkpoints_that_do_not_fit_their_model(tmp_path, cli, trained_run, edit):
    ck = torch.load(trained_run.run_dir / "best.pt", weights_only=True)
    if edit == "other_arch":
        ck["arch"] = "cnn3"  # shallow's weights under another architecture's name
    elif edit == "other_classes":
        ck["arch_args"] = {**ck["arch_args"], "num_classes": 7}
    else:
        del ck["preprocess"]
    torch.save(ck, tmp_path / "edited.pt")
    assert_one_line_error(cli("evaluate", tmp_path / "edited.pt"), "edited.pt")
    assert_one_line_error(cli("predict", tmp_path / "edited.pt", trained_run.run_dir), "edited.pt")
