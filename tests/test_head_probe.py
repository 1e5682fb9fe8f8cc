"""--head-probe (training/probe.py): the head of a frozen backbone starts as the logistic regression of the
labels on its cached features, once, at the start of a fresh run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from convclass.training import train
from convclass.training.probe import fit_linear_head, probe_layer

FITTED = "head: fitted as a linear probe on the frozen features"


def _blobs(n: int, d: int, classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 4 + 10  # far from the origin: centring matters
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, d, generator=g), y


@pytest.mark.parametrize("classes", [2, 5])
def test_fitted_layer_reproduces_the_regression(classes):
    from sklearn.linear_model import LogisticRegression
    x, y = _blobs(200, 12, classes)
    layer = nn.Linear(12, classes)
    acc = fit_linear_head(layer, x, y, classes)
    assert acc == 1.0
    mu, sd = x.double().mean(0), x.double().std(0, unbiased=False) + 1e-6
    ref = LogisticRegression(max_iter=300).fit(((x.double() - mu) / sd).numpy(), y.numpy())
    want = ref.predict_proba(((x.double() - mu) / sd).numpy())
    got = torch.softmax(layer(x).double(), 1).detach().numpy()
    assert np.allclose(got, want, atol=1e-4)  # the scaling is folded into the weights exactly


def test_a_class_missing_from_training_is_never_predicted():
    x, y = _blobs(90, 6, 3)
    layer = nn.Linear(6, 4)  # class 3 has no training image
    fit_linear_head(layer, x, y, 4)
    assert layer(x).argmax(1).eq(3).sum() == 0 and torch.all(layer.weight[3] == 0)


def test_only_a_plain_linear_head_is_fitted():
    assert probe_layer(nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2))) is not None
    assert probe_layer(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))) is None


RUN = dict(model="cnn6", img_size=16, batch_size=8, device="cpu", threads=1, report=False, seed=3,
           freeze="backbone", epochs=1, lr=1e-7, schedule="none")


@pytest.mark.timeout(120)
def test_frozen_run_starts_from_the_probe_and_a_resumed_run_keeps_its_head(rgb_folder, tmp_path, capsys):
    common = dict(RUN, data=str(rgb_folder), runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "c"))
    plain = train(**common, name="plain", quiet=True)
    probed = train(**common, name="probed", head_probe=True, quiet=False)
    assert FITTED in capsys.readouterr().out
    # at lr 1e-7 the optimizer moves nothing: what the run scores is where its head started
    assert probed.history[0]["train_acc"] > plain.history[0]["train_acc"] + 0.2
    assert probed.history[0]["train_acc"] >= 0.9
    resumed = train(resume=probed.run_dir, epochs=2, quiet=False)
    assert FITTED not in capsys.readouterr().out  # the checkpoint's head is kept, not refitted
    assert resumed.history[-1]["epoch"] == 2


def test_the_probe_is_scaled_to_the_runs_smoothed_loss():
    import torch.nn.functional as F

    from convclass.training.probe import match_loss_scale
    x, y = _blobs(200, 12, 4)
    layer = nn.Linear(12, 4)
    fit_linear_head(layer, x, y, 4)
    before, pred = layer(x).detach(), layer(x).argmax(1)
    scale = match_loss_scale(layer, x, y, 0.1)
    after = layer(x).detach()
    assert scale < 0.9 and torch.equal(after.argmax(1), pred)
    assert F.cross_entropy(after, y, label_smoothing=0.1) < F.cross_entropy(before, y, label_smoothing=0.1) - 0.01
    assert match_loss_scale(layer, x, y, 0.0) == 1.0  # no smoothing: never shrunk
