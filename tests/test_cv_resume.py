"""`convclass cv --resume`: a stopped cross-validation finishes where it stopped, with the results of one that
ran straight through; what would change the experiment is refused."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import assert_one_line_error
from convclass.errors import Interrupted
from synth import write_class_folders

DIGITS = dict(data="digits", model="shallow", epochs=3, lr=0.01, device="cpu", threads=1, quiet=True, name="cv")


class Stop(KeyboardInterrupt):
    """Ctrl-C in the middle of a fold."""


def _stop_fold_two_after_epoch_one(monkeypatch):
    """Make the next cross-validation stop in fold 2 right after its first epoch's checkpoint, as Ctrl-C would."""
    from convclass.pipeline import crossval
    real = crossval.train_and_report

    def stop(row, run_dir):
        if run_dir.name == "fold2" and row["epoch"] == 1:
            raise Stop

    def patched(config=None, **kw):
        return real(config, callbacks=[stop], **kw)
    monkeypatch.setattr(crossval, "train_and_report", patched)


def test_resumed_cv_equals_one_run_straight_through(tmp_path, monkeypatch):
    from convclass.pipeline import cross_validate
    from convclass.pipeline.crossval import read_oof
    cache = str(tmp_path / "cache")
    straight = cross_validate(folds=3, runs_dir=str(tmp_path / "a"), data_root=cache, **DIGITS)

    with monkeypatch.context() as m:
        _stop_fold_two_after_epoch_one(m)
        with pytest.raises(Interrupted) as stopped:
            cross_validate(folds=3, runs_dir=str(tmp_path / "b"), data_root=cache, **DIGITS)
    cv_dir = tmp_path / "b" / "cv"
    assert stopped.value.resume == f"convclass cv --resume {cv_dir}"  # not the fold's own train --resume
    assert (cv_dir / "fold1" / "test_metrics.json").is_file()
    assert (cv_dir / "fold2" / "last.pt").is_file() and not (cv_dir / "fold2" / "test_metrics.json").exists()
    assert not (cv_dir / "fold3").exists() and not (cv_dir / "cv.json").exists()
    fold1_mtime = (cv_dir / "fold1" / "best.pt").stat().st_mtime_ns
    epoch1 = (cv_dir / "fold2" / "metrics.csv").read_text().splitlines()[1]  # its seconds column: this run's own

    resumed = cross_validate(resume=cv_dir, quiet=True)
    assert (cv_dir / "fold1" / "best.pt").stat().st_mtime_ns == fold1_mtime  # scored folds are read back
    epochs2 = [int(ln.split(",")[0]) for ln in (cv_dir / "fold2" / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs2 == [1, 2, 3]
    assert (cv_dir / "fold2" / "metrics.csv").read_text().splitlines()[1] == epoch1  # went on, not from scratch
    assert [f["accuracy"] for f in resumed["folds"]] == pytest.approx([f["accuracy"] for f in straight["folds"]],
                                                                       abs=1e-9)
    a, b = read_oof(tmp_path / "a" / "cv"), read_oof(cv_dir)
    np.testing.assert_array_equal(a["fold"], b["fold"])
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
    assert json.loads((cv_dir / "cv.json").read_text())["mean"]["accuracy"] == pytest.approx(
        straight["mean"]["accuracy"], abs=1e-9)


def test_resume_of_a_finished_cv_trains_nothing_and_prints_its_table(tmp_path, cli):
    from convclass.pipeline import cross_validate
    done = cross_validate(folds=2, runs_dir=str(tmp_path), data_root=str(tmp_path / "cache"), **DIGITS)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cv").glob("fold*/*.pt")}
    r = cli("cv", "--resume", tmp_path / "cv", "--quiet")
    assert r.rc == 0, r
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "2-fold cross-validation of shallow on digits" in r.out
    assert f"{done['mean']['accuracy']:.4f}" in next(ln for ln in r.out.splitlines() if ln.strip().startswith("accuracy "))


def _small_cv(tmp_path, cli):
    """A finished 2-fold cross-validation of a 3-class folder of 6 images each: (the folder, the cv folder)."""
    data = tmp_path / "colours"
    write_class_folders(data, per_class=6, size=16)
    r = cli("cv", "--folds", "2", "--data", data, "--model", "shallow", "--epochs", "1", "--device", "cpu",
            "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--name", "cv", "--quiet")
    assert r.rc == 0, r
    return data, tmp_path / "runs" / "cv"


def test_resume_refuses_what_would_change_the_experiment(tmp_path, cli):
    _, cv_dir = _small_cv(tmp_path, cli)
    assert_one_line_error(cli("cv", "--resume", cv_dir, "--lr", "0.5"), "cannot change --lr", "new `convclass cv`")
    assert_one_line_error(cli("cv", "--resume", cv_dir, "--epochs", "5"), "cannot change --epochs")
    assert_one_line_error(cli("cv", "--resume", cv_dir, "--folds", "3"), "2-fold", "--folds 3")
    assert_one_line_error(cli("cv", "--resume", cv_dir, "--config", cv_dir / "cv_config.yaml"), "drop --config")
    assert_one_line_error(cli("cv", "--resume", tmp_path / "runs"), "not a folder `convclass cv` started")
    (cv_dir / "cv_plan.json").write_text("[1, 2]")
    assert_one_line_error(cli("cv", "--resume", cv_dir), "not a cross-validation plan")


def test_resume_refuses_data_that_gives_other_folds(tmp_path, cli):
    data, cv_dir = _small_cv(tmp_path, cli)
    shutil.rmtree(cv_dir / "fold2")
    victim = next(iter(sorted((data / "red").iterdir())))
    shutil.copy(victim, data / "green" / ("moved-" + victim.name))  # one more image, in another class
    before = sorted(p.name for p in cv_dir.iterdir())
    assert_one_line_error(cli("cv", "--resume", cv_dir), "no longer gives the folds")
    assert sorted(p.name for p in cv_dir.iterdir()) == before  # nothing trained, nothing written


def test_ctrl_c_says_how_to_continue(tmp_path, cli, monkeypatch):
    """The CLI's "interrupted" line names the command that continues: cv's for a cross-validation; train's for a
    run with a checkpoint; nothing to continue before the first checkpoint (the run folder is gone)."""
    _stop_fold_two_after_epoch_one(monkeypatch)
    r = cli("cv", "--folds", "3", "--data", "digits", "--model", "shallow", "--epochs", "2", "--device", "cpu",
            "--runs-dir", tmp_path, "--data-root", tmp_path / "cache", "--name", "cv", "--quiet")
    assert r.rc == 130 and r.err.strip().splitlines()[-1] == f"interrupted; continue with: convclass cv --resume {tmp_path / 'cv'}"

    from convclass import train

    def ctrl_c(row, run_dir):
        raise KeyboardInterrupt
    with pytest.raises(Interrupted) as stopped:
        train(data="digits", model="shallow", epochs=3, device="cpu", quiet=True, runs_dir=str(tmp_path),
              data_root=str(tmp_path / "cache"), name="one", callbacks=[ctrl_c])
    assert stopped.value.resume == f"convclass train --resume {tmp_path / 'one'}"

    from convclass.training.core import Hook

    class FirstStep(Hook):
        def on_step_end(self, state):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as early:
        train(data="digits", model="shallow", epochs=3, device="cpu", quiet=True, runs_dir=str(tmp_path),
              data_root=str(tmp_path / "cache"), name="two", hooks=[FirstStep()])
    assert not isinstance(early.value, Interrupted) and not (tmp_path / "two").exists()


def test_ctrl_c_in_label_issues_and_tune_names_their_own_way_on(tmp_path, cli, monkeypatch):
    """A fold of label-issues or a trial of tune is a train run inside something larger: the line names what
    continues the larger thing, not the inner run's own train --resume."""
    with monkeypatch.context() as m:
        _stop_fold_two_after_epoch_one(m)
        r = cli("label-issues", "digits", "--folds", "3", "--model", "shallow", "--epochs", "2", "--device", "cpu",
                "--runs-dir", tmp_path, "--data-root", tmp_path / "cache", "--quiet")
    cv_dir = next(tmp_path.glob("*-cv"))
    assert r.rc == 130 and r.err.strip().splitlines()[-1] == (
        f"interrupted; continue with: convclass cv --resume {cv_dir}, then convclass label-issues --from-cv {cv_dir}")

    import convclass.pipeline

    def ctrl_c_after_a_checkpoint(cfg, **kw):
        raise Interrupted(f"convclass train --resume {cfg.runs_dir}/{cfg.name}")
    monkeypatch.setattr(convclass.pipeline, "train_and_report", ctrl_c_after_a_checkpoint)  # tune's trial runs
    r = cli("tune", "--data", "digits", "--model", "shallow", "--epochs", "1", "--trials", "2", "--runs-dir",
            tmp_path / "tune", "--data-root", tmp_path / "cache", "--storage", f"sqlite:///{tmp_path / 'tune.db'}")
    assert r.rc == 130, r
    assert r.err.strip().splitlines()[-1] == ("interrupted; continue with: the same `convclass tune` command (the "
                                              "study continues from its database)")


def test_resume_refuses_special_files_where_scores_are_read(tmp_path, cli):
    """A cv folder may come from anywhere: a FIFO where a fold's scores or predictions belong is refused in one
    line instead of hanging the read (or a later write)."""
    import os
    _, cv_dir = _small_cv(tmp_path, cli)
    (cv_dir / "fold1" / "test_metrics.json").unlink()
    os.mkfifo(cv_dir / "fold1" / "test_metrics.json")
    assert_one_line_error(cli("cv", "--resume", cv_dir), "test_metrics.json", "FIFO")
    (cv_dir / "fold1" / "test_metrics.json").unlink()
    (cv_dir / "fold2" / "predictions.npz").unlink()
    os.mkfifo(cv_dir / "fold2" / "predictions.npz")
    (cv_dir / "fold2" / "test_metrics.json").unlink()
    assert_one_line_error(cli("report", cv_dir / "fold2"), "predictions.npz", "FIFO")
