"""--track mlflow: the run in MLflow. The settings as params at the start, each epoch's losses, accuracies and
learning rate as metrics (step = epoch), and once the pipeline has scored best.pt: the test scores, the figures,
report.html, test_metrics.json and best.pt as artifacts.

The store is --track-uri (a server, sqlite:///FILE.db or a folder), by default RUNS_DIR/mlflow.db with the
artifacts in RUNS_DIR/mlartifacts (`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db` shows them). The
MLflow run id travels in last.pt, so --resume keeps logging into the same MLflow run. Once training has started,
a failed log call is a warning, never the end of the run: the run folder is the record, MLflow a copy of it.
"""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

from ...checkpoint import first_line
from ...errors import ConvclassError
from ..core import Hook, TrainState

__all__ = ["MLflowTracker", "from_config", "tracking_uri"]

EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
TEST_KEYS = ("accuracy", "top5_accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted")
QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")
MAX_PARAM = 6000  # characters MLflow keeps of a param value
PARAMS_PER_CALL = 100  # MLflow's log_batch limit
# run-folder file -> artifact folder (None: the top); the figures/ folder goes as a whole
ARTIFACTS = {"report.html": None, "test_metrics.json": None, "metrics.csv": None, "config.yaml": None,
             "best.pt": "model"}


def from_config(state: TrainState) -> MLflowTracker | None:
    # rank 0 only: under DDP every rank trains, one reports
    return MLflowTracker() if state.cfg.track == "mlflow" and state.ctx.is_main else None


def tracking_uri(cfg) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment; None: the store's own default)."""
    if cfg.track_uri:
        uri = cfg.track_uri
        if uri.startswith("sqlite:///"):  # MLflow would put the artifacts in the working directory
            return uri, (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
        return uri, None
    root = Path(cfg.runs_dir).resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


class MLflowTracker(Hook):
    name = "mlflow"

    def __init__(self):
        self.client = None
        self.run_id: str | None = None  # set on resume from last.pt
        self.warned = False

    def on_fit_start(self, state: TrainState) -> None:
        uri, artifacts = tracking_uri(state.cfg)
        try:
            from mlflow import MlflowClient  # 3 s of imports: only when tracking is on
            from mlflow.entities import Param
            for name in QUIET_LOGGERS:  # a new store's table set-up is not news to the user
                logging.getLogger(name).setLevel(logging.WARNING)
            self.client = MlflowClient(tracking_uri=uri)
            if self.run_id is not None:
                self.client.update_run(self.run_id, status="RUNNING")
                return
            name = f"convclass-{state.data.name}"
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(name, artifact_location=artifacts)
            tags = {"run_dir": str(Path(state.run_dir).resolve()), "model": state.cfg.model,
                    "mlflow.source.git.commit": state.cfg.git_commit or ""}
            self.run_id = self.client.create_run(exp_id, run_name=Path(state.run_dir).name, tags=tags).info.run_id
            params = [Param(k, str(v)[:MAX_PARAM]) for k, v in state.cfg.to_dict().items()]
            for i in range(0, len(params), PARAMS_PER_CALL):
                self.client.log_batch(self.run_id, params=params[i:i + PARAMS_PER_CALL])
            state.log(f"MLflow: run {self.run_id} in {uri}")
        except ImportError:
            raise ConvclassError("--track mlflow needs MLflow; pip install mlflow (or `make install`)") from None
        except Exception as e:  # MLflow raises its own types (MlflowException, requests' errors, SQLAlchemy's)
            raise ConvclassError(f"--track mlflow: cannot log to {uri} ({first_line(e)[:200]}); start the "
                                 "tracking server, fix --track-uri, or leave it out to use RUNS_DIR/mlflow.db") from None

    def _safely(self, what: str, call: str, *args) -> None:
        if self.client is None:  # on_fit_start never ran or failed
            return
        try:
            getattr(self.client, call)(self.run_id, *args)
        except Exception as e:  # keep training: the run folder holds everything MLflow would
            if not self.warned:
                warnings.warn(f"MLflow: could not log {what} ({first_line(e)[:160]}); the run goes on, its "
                              "folder holds everything")
                self.warned = True

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(row[k]), now, int(row["epoch"])) for k in EPOCH_KEYS
                   if k in row and row[k] == row[k]]  # NaN: the epoch was not validated (--val-every)
        self._safely("the epoch's metrics", "log_batch", metrics)

    def on_fit_end(self, state: TrainState) -> None:
        done = state.epoch >= state.cfg.epochs or state.stop is not None
        self._safely("the run's end", "set_terminated", "FINISHED" if done else "FAILED")

    def on_test_end(self, state: TrainState, metrics: dict) -> None:
        from mlflow.entities import Metric
        now, step = int(time.time() * 1000), len(state.history)
        scores = [Metric(f"test_{k}", float(metrics[k]), now, step) for k in TEST_KEYS if k in metrics]
        self._safely("the test scores", "log_batch", scores)
        run_dir = Path(state.run_dir)
        for name, folder in ARTIFACTS.items():
            if (run_dir / name).is_file():
                self._safely(name, "log_artifact", str(run_dir / name), folder)
        if (run_dir / "figures").is_dir():
            self._safely("the figures", "log_artifacts", str(run_dir / "figures"), "figures")

    def state_dict(self) -> dict:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict) -> None:
        self.run_id = state.get("run_id")
