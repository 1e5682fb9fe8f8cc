"""The training core: hooks see the events in the documented order, their state travels in last.pt and comes back
on --resume; the RNG and warning-filter state of the process are restored or left alone."""
from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import pytest
import torch

from convclass.checkpoint import load_checkpoint
from convclass.errors import ConvclassError
from convclass.training import Hook, train
from test_training import digits_run, read_metrics

REPO = Path(__file__).resolve().parents[1]


class Recorder(Hook):
    """Counts steps (its state) and draws from Python's RNG every step, as user code in a hook may."""
    name = "recorder"

    def __init__(self):
        self.events, self.steps, self.draws = [], 0, []

    def on_fit_start(self, state):
        self.events.append("fit_start")

    def on_epoch_start(self, state):
        self.events.append("epoch_start")

    def on_step_end(self, state):
        self.steps += 1
        self.draws.append(random.random())
        if not self.events[-1] == "step":
            self.events.append("step")

    def on_train_epoch_end(self, state):
        self.events.append("train_epoch_end")

    def on_epoch_end(self, state, row):
        self.events.append(f"epoch_end {row['epoch']}")

    def on_fit_end(self, state):
        self.events.append("fit_end")

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_hooks_see_the_events_in_order_and_their_state_survives_a_resume(tmp_path):
    full_hook, cut_hook, resumed_hook = Recorder(), Recorder(), Recorder()
    full = digits_run(tmp_path, name="full", epochs=3, hooks=[full_hook])
    assert full_hook.events == (["fit_start"] + ["epoch_start", "step", "train_epoch_end", "epoch_end 1",
                                                 "epoch_start", "step", "train_epoch_end", "epoch_end 2",
                                                 "epoch_start", "step", "train_epoch_end", "epoch_end 3"]
                                + ["fit_end"])
    cut = digits_run(tmp_path, name="cut", epochs=3, hooks=[cut_hook],
                     callbacks=[lambda row, run: row["epoch"] == 1])
    assert load_checkpoint(cut.run_dir / "last.pt")["recorder_state"] == {"steps": cut_hook.steps}
    train(resume=cut.run_dir, quiet=True, hooks=[resumed_hook])
    assert resumed_hook.steps == full_hook.steps  # counted on from the saved state
    assert read_metrics(cut.run_dir) == read_metrics(full.run_dir)


def test_resume_restores_the_python_rng(tmp_path):
    """Python's RNG state was saved in last.pt but never put back: code drawing from `random` during training
    saw other numbers after a resume."""
    full_hook, cut_hook, resumed_hook = Recorder(), Recorder(), Recorder()
    digits_run(tmp_path, name="full", epochs=2, hooks=[full_hook])
    cut = digits_run(tmp_path, name="cut", epochs=2, hooks=[cut_hook], callbacks=[lambda row, run: True])
    random.seed(12345)  # whatever the process did in between
    train(resume=cut.run_dir, quiet=True, hooks=[resumed_hook])
    assert cut_hook.draws + resumed_hook.draws == full_hook.draws


def test_a_hook_state_missing_from_last_pt_is_a_one_line_error(tmp_path):
    cut = digits_run(tmp_path, name="cut", epochs=2, callbacks=[lambda row, run: True])
    with pytest.raises(ConvclassError, match="holds no recorder state") as e:
        train(resume=cut.run_dir, quiet=True, hooks=[Recorder()])
    assert "\n" not in str(e.value)


def test_ddp_stride_warning_is_hidden_only_while_training():
    """wrap_ddp used to add a permanent, process-wide warnings filter."""
    import torch.distributed as dist

    from convclass.training.distributed import DistContext, quiet_ddp_warnings, wrap_ddp

    def stride_filters():
        return [f for f in warnings.filters if f[1] is not None and "Grad strides" in f[1].pattern]
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        wrap_ddp(torch.nn.Linear(2, 2), DistContext(rank=0, world=2), torch.device("cpu"))
        assert stride_filters() == []
        stride = "Grad strides do not match bucket view strides. This may indicate grad was not created ..."
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_ddp_warnings(DistContext(rank=0, world=2)):
                warnings.warn(stride)
            warnings.warn(stride)
        assert len(caught) == 1  # hidden inside, shown again outside
    finally:
        dist.destroy_process_group()
    assert stride_filters() == []


def test_one_feature_is_one_file():
    """Lookahead lives in its hook; only the config (its option) and the recipes (that switch it on) name it."""
    allowed = {"convclass/training/hooks/lookahead.py", "convclass/config.py", "convclass/training/recipes.py"}
    naming = {str(p.relative_to(REPO)) for p in (REPO / "convclass").rglob("*.py")
              if re.search("lookahead", p.read_text(), re.IGNORECASE)}
    assert naming <= allowed, naming - allowed


def test_no_training_file_over_400_lines():
    for p in (REPO / "convclass" / "training").rglob("*.py"):
        assert len(p.read_text().splitlines()) <= 400, p
