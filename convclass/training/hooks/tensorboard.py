"""TensorBoard event files in the run folder: losses, accuracies and the learning rate per epoch; once the
pipeline has scored best.pt, the confusion matrix and sample-prediction figures as images and the settings with
the test scores as hparams (the HPARAMS tab compares runs by them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import Hook, TrainState

__all__ = ["TensorBoard", "IMAGES"]

# figures/ file (drawn by the report) -> image tag
IMAGES = {"confusion_normalized.png": "test/confusion_matrix", "confident_wrong.png": "test/confident_wrong",
          "confident_correct.png": "test/confident_correct"}
HPARAM_METRICS = ("accuracy", "f1_macro")


class TensorBoard(Hook):
    def __init__(self):
        self.writer = None
        self.start = 0

    def _open(self, state: TrainState, purge: int | None = None):
        if self.writer is None:  # opened when first needed: importing TensorBoard is 0.1 s of start-up
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(state.run_dir), purge_step=purge)
        return self.writer

    def on_fit_start(self, state: TrainState) -> None:
        self.start = state.epoch  # a resumed run drops the events its lost epochs wrote

    def on_epoch_end(self, state: TrainState, row: dict) -> None:
        writer = self._open(state, self.start)
        for key in ("train_loss", "train_acc", "lr") + (("val_loss", "val_acc") if state.validated else ()):
            writer.add_scalar(key.replace("_", "/", 1), row[key], row["epoch"])
        writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_test_end(self, state: TrainState, metrics: dict) -> None:
        from PIL import Image
        writer, step = self._open(state), len(state.history)
        for name, tag in IMAGES.items():
            path = Path(state.run_dir) / "figures" / name
            if path.is_file():  # drawn only when the report is on (--report)
                with Image.open(path) as im:
                    writer.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                   for k, v in state.cfg.to_dict().items() if v is not None}
        scores = {f"hparam/test_{k}": float(metrics[k]) for k in HPARAM_METRICS if k in metrics}
        writer.add_hparams(hparams, scores, run_name=".")  # ".": in the run's own folder, beside its scalars
        writer.close()
        self.writer = None
