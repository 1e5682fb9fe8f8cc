"""--track mlflow against a real local MLflow store (SQLite), read back with MLflow's own client; TensorBoard's
images and hparams from the same run."""
from __future__ import annotations

from pathlib import Path

import mlflow  # a dev dependency, installed by `make install`: CI runs this test, never skips it
import pytest

from convclass.errors import ConvclassError


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, rgb_folder):
    from convclass import train
    base = tmp_path_factory.mktemp("tracked")
    res = train(data=str(rgb_folder), model="shallow", epochs=2, batch_size=16, lr=0.01, device="cpu",
                runs_dir=str(base / "runs"), data_root=str(base / "cache"), quiet=True, name="colours",
                track="mlflow")
    return res, base / "runs"


@pytest.mark.timeout(300)  # includes the fixture: a new SQLite store runs MLflow's ~50 migrations (20-150 s here)
def test_mlflow_run_holds_params_epochs_scores_and_artifacts(tracked):
    res, runs = tracked
    assert (runs / "mlflow.db").is_file()  # the default store: beside the run folders, not in the cwd
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("convclass-colours")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "colours" and run.info.status == "FINISHED"
    assert run.data.params["model"] == "shallow" and run.data.params["epochs"] == "2"
    assert run.data.tags["run_dir"] == str(Path(res.run_dir).resolve())
    hist = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in hist] == [1, 2]
    assert [m.value for m in hist] == pytest.approx([r["val_acc"] for r in res.history])
    assert run.data.metrics["test_accuracy"] == pytest.approx(res.test_metrics["accuracy"])
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "test_metrics.json", "figures", "model"} <= top
    assert {"figures/confusion_normalized.png", "figures/curves.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    local = client.download_artifacts(run.info.run_id, "model/best.pt", str(runs.parent / "dl"))
    assert Path(local).read_bytes() == (Path(res.run_dir) / "best.pt").read_bytes()
    assert str(runs / "mlartifacts") in run.info.artifact_uri  # not ./mlartifacts wherever the user stood


@pytest.mark.timeout(60)
def test_tensorboard_gets_images_and_hparams(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    res, _ = tracked
    acc = EventAccumulator(str(res.run_dir), size_guidance={"images": 0}).Reload()
    assert {"test/confusion_matrix", "test/confident_correct"} <= set(acc.Tags()["images"])
    assert {"train/loss", "val/acc"} <= set(acc.Tags()["scalars"])
    assert "hparam/test_accuracy" in acc.Tags()["scalars"]  # the HPARAMS tab's metric, in the run's own folder


@pytest.mark.timeout(60)
def test_unreachable_tracking_store_is_one_line_before_training(tmp_path, rgb_folder):
    from convclass import train
    bad = tmp_path / "not-a-folder"
    bad.write_text("x")  # a file where the store's folder should be
    with pytest.raises(ConvclassError, match="--track mlflow: cannot log to"):
        train(data=str(rgb_folder), model="shallow", epochs=1, batch_size=16, device="cpu", quiet=True,
              runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"), track="mlflow",
              track_uri=f"sqlite:///{bad}/x.db")
    assert not any((tmp_path / "runs").glob("*/best.pt"))


@pytest.mark.timeout(120)
def test_resume_logs_into_the_same_mlflow_run(tracked):
    """The MLflow run id travels in last.pt: --resume adds epoch 3 to the run, not a second run."""
    from convclass import train
    res, runs = tracked
    train(resume=res.run_dir, epochs=3)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("convclass-colours").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3]
    assert run.info.status == "FINISHED"
