"""The frozen stage at the cost of one forward pass (training/frozen.py): the head trained on cached features is
the head trained end to end, the backbone sees each training image once per frozen stage, staged fine-tuning
still trains every layer afterwards, and a run resumed mid-stage is exact."""
from __future__ import annotations

import pytest
import torch

from convclass.training import Hook, frozen, train
from test_training import read_metrics

# cnn3 at 16 px: a head with BatchNorm and dropout (Flatten, Linear, BN, ReLU, Dropout, ... Linear)
RUN = dict(model="cnn3", batch_size=8, lr=0.01, device="cpu", threads=1, report=False, seed=3)
COMPUTED = "frozen backbone: features of {} images computed once"


class CountBackbone(Hook):
    """Images through the backbone (training and validation alike), counted by a forward hook."""

    def __init__(self):
        self.images = 0

    def on_fit_start(self, state):
        state.model.features.register_forward_hook(lambda m, inputs, out: self._add(len(inputs[0])))

    def _add(self, n: int) -> None:
        self.images += n


def _run(rgb_folder, tmp_path, name: str, **kw):
    args = dict(RUN, data=str(rgb_folder), runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"),
                name=name, quiet=True)
    return train(**{**args, **kw})


def _part(model, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.timeout(60)
def test_head_on_cached_features_equals_head_trained_end_to_end(rgb_folder, tmp_path, monkeypatch, capsys):
    cached = _run(rgb_folder, tmp_path, "cached", freeze="backbone", epochs=2, quiet=False)
    n = len(cached.state.data.train)
    assert COMPUTED.format(n) in capsys.readouterr().out
    with monkeypatch.context() as m:
        m.setattr(frozen, "cached_features", lambda state: None)  # the end-to-end path
        plain = _run(rgb_folder, tmp_path, "plain", freeze="backbone", epochs=2)
    head, ref = _part(cached.state.model, "head."), _part(plain.state.model, "head.")
    assert head.keys() == ref.keys() and any("running_mean" in k for k in head)
    for k, v in ref.items():  # dropout draws the same masks: same seeded stream, same shapes, same order
        assert torch.allclose(head[k].float(), v.float(), rtol=1e-5, atol=1e-6), k
    for a, b in zip(cached.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == b["val_acc"] and a["train_acc"] == b["train_acc"]
    assert all(torch.equal(v, _part(plain.state.model, "features.")[k])
               for k, v in _part(cached.state.model, "features.").items())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("augment,views", [("none", 1), ("flip-crop", 2)])
def test_backbone_runs_once_per_image_for_the_frozen_stage(rgb_folder, tmp_path, augment, views):
    count = CountBackbone()
    res = _run(rgb_folder, tmp_path, f"once-{augment}", freeze="backbone", epochs=3, augment=augment,
               hooks=[count])
    n_train, n_val = len(res.state.data.train), len(res.state.data.val)
    # once per training image and view, then validation's forward pass every epoch
    assert count.images == views * n_train + 3 * n_val


@pytest.mark.timeout(60)
def test_mixup_trains_the_frozen_stage_end_to_end_and_says_so(rgb_folder, tmp_path, capsys):
    count = CountBackbone()
    res = _run(rgb_folder, tmp_path, "mixup", freeze="backbone", epochs=2, mixup=0.4, hooks=[count], quiet=False)
    out = capsys.readouterr().out
    assert out.count("note: the frozen backbone runs every epoch (mixup and cutmix mix pixels") == 1
    assert "computed once" not in out
    # every epoch's batches went through it (less a last batch of one image, which no epoch trains on)
    assert count.images - 2 * len(res.state.data.val) >= 2 * (len(res.state.data.train) - 1)


class Snapshots(Hook):
    """The weights before training and after each epoch."""

    def __init__(self):
        self.at = {}

    def on_fit_start(self, state):
        self.at[0] = _part(state.model, "")

    def on_epoch_end(self, state, row):
        self.at[row["epoch"]] = _part(state.model, "")


@pytest.mark.timeout(60)
def test_fine_tune_stages_still_train_every_layer_after_the_frozen_one(rgb_folder, tmp_path, capsys):
    snaps = Snapshots()
    res = _run(rgb_folder, tmp_path, "stages", fine_tune="1,1", hooks=[snaps], quiet=False)
    assert COMPUTED.format(len(res.state.data.train)) in capsys.readouterr().out
    at, conv, fc = snaps.at, "features.0.weight", "head.1.weight"
    assert torch.equal(at[1][conv], at[0][conv]) and not torch.equal(at[1][fc], at[0][fc])
    assert not torch.equal(at[2][conv], at[1][conv]), "epoch 2 left the backbone untouched"
    assert not torch.equal(at[2][fc], at[1][fc])
    assert res.state not in frozen._CACHES  # the features were freed when the backbone unfroze


@pytest.mark.timeout(90)
def test_resume_mid_frozen_stage_is_exact(rgb_folder, tmp_path, capsys):
    full = _run(rgb_folder, tmp_path, "full", fine_tune="2,1")
    cut = _run(rgb_folder, tmp_path, "cut", fine_tune="2,1", callbacks=[lambda row, run: row["epoch"] == 1])
    capsys.readouterr()
    resumed = train(resume=cut.run_dir, quiet=False)
    assert COMPUTED.format(len(resumed.state.data.train)) in capsys.readouterr().out  # computed again
    assert read_metrics(cut.run_dir) == read_metrics(full.run_dir)
    a, b = full.state.model.state_dict(), resumed.state.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
