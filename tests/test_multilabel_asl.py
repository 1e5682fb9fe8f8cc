"""The asymmetric loss (--loss asl) of multi-label runs: BCE when it neither focuses nor shifts, easy negatives
down-weighted as the paper's formula says, refused on single-label data, and a run that trains with it."""
from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import assert_one_line_error
from convclass import config
from convclass.errors import ConvclassError
from convclass.training import losses
from multilabel_synth import write_multilabel_csv


def test_choices_match_the_losses_implemented():
    assert typing.get_args(config.LossName) == tuple(losses.LOSSES)


def test_asl_without_focusing_or_margin_is_bce():
    g = torch.Generator().manual_seed(0)
    out, target = torch.randn(6, 4, generator=g) * 3, torch.rand(6, 4, generator=g)  # soft rows, as mixup makes
    w = torch.tensor([1.0, 2.0, 0.5, 4.0])
    for pos_weight in (None, w):
        asl = losses.asymmetric_loss(out, target, 0.0, 0.0, 0.0, pos_weight=pos_weight)
        assert asl.item() == pytest.approx(F.binary_cross_entropy_with_logits(out, target, pos_weight=pos_weight)
                                           .item(), rel=1e-6)
    hard = (target > 0.5).float()
    smoothed = losses.loss_function(True, None, 0.2, (0.0, 0.0, 0.0))(out, hard)
    assert smoothed.item() == pytest.approx(losses.loss_function(True, None, 0.2)(out, hard).item(), rel=1e-6)


def test_asl_down_weights_easy_negatives_as_the_formula_says():
    out = torch.tensor([[0.0, -2.0, -4.0, 3.0]])  # three negatives (hard, easy, below the margin), one positive
    target = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    sig = [1 / (1 + math.exp(-x)) for x in (0.0, -2.0, -4.0, 3.0)]
    # by hand: a negative costs -max(p - 0.05, 0)^4 log(1 - max(p - 0.05, 0)); the positive -(1 - p)^1 log p
    neg = [-(max(p - 0.05, 0) ** 4) * math.log(1 - max(p - 0.05, 0)) for p in sig[:3]]
    pos = -(1 - sig[3]) * math.log(sig[3])
    assert neg[2] == 0  # sigmoid(-4) = 0.018 is below the 0.05 margin
    got = losses.asymmetric_loss(out, target, 4.0, 1.0, 0.05)
    assert got.item() == pytest.approx((sum(neg) + pos) / 4, rel=1e-5)
    bce = F.binary_cross_entropy_with_logits(out, target, reduction="none")[0]
    per = [losses.asymmetric_loss(out[:, k:k + 1], target[:, k:k + 1], 4.0, 1.0, 0.05).item() for k in range(4)]
    assert per[0] / bce[0].item() < 0.05 and per[1] / bce[1].item() < 1e-3  # the easier, the less it weighs


def test_asl_gradients_stay_finite_when_the_sigmoid_saturates():
    out = torch.tensor([[100.0, -100.0, 30.0, -30.0]], requires_grad=True)
    loss = losses.asymmetric_loss(out, torch.tensor([[1.0, 0.0, 0.0, 1.0]]), 4.0, 1.0, 0.05)
    loss.backward()
    assert math.isfinite(loss.item()) and bool(torch.isfinite(out.grad).all())


def test_asl_on_single_label_data_is_a_one_line_error(cli, rgb_folder, tmp_path):
    with pytest.raises(ConvclassError, match="multi-label"):
        config.TrainConfig(task="single", loss="asl").validate()
    res = cli("train", "--data", rgb_folder, "--loss", "asl", "--model", "shallow", "--epochs", "1", "--device",
              "cpu", "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--no-report")
    assert_one_line_error(res, "--loss asl is for multi-label data", "drop --loss asl")
    assert not any((tmp_path / "runs").rglob("*.pt"))  # refused before the first epoch


@pytest.mark.timeout(120)
def test_a_multilabel_run_trains_with_asl_and_saves_its_settings(cli, tmp_path, monkeypatch):
    seen = []  # (gamma_neg, gamma_pos, clip) of every ASL computed in training
    real = losses.asymmetric_loss

    def spy(out, target, *args, **kw):
        seen.append(args)
        return real(out, target, *args, **kw)
    monkeypatch.setattr(losses, "asymmetric_loss", spy)
    csv = write_multilabel_csv(tmp_path / "data", n=40, rare=0.2)
    res = cli("train", "--data", csv, "--loss", "asl", "--asl-gamma-neg", "3", "--asl-clip", "0.1", "--model",
              "shallow", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--runs-dir", tmp_path / "runs",
              "--data-root", tmp_path / "cache", "--no-report", "--name", "asl")
    assert res.rc == 0, res.err
    assert "test mAP" in res.out and seen and set(seen) == {(3.0, 0.0, 0.1)}
    saved = yaml.safe_load((tmp_path / "runs" / "asl" / "config.yaml").read_text())
    assert (saved["loss"], saved["asl_gamma_neg"], saved["asl_gamma_pos"], saved["asl_clip"]) == ("asl", 3, 0, 0.1)


def test_asl_settings_without_loss_asl_are_refused():
    from convclass.config import TrainConfig
    from convclass.errors import ConvclassError
    with pytest.raises(ConvclassError, match="--asl-clip applies only with --loss asl"):
        TrainConfig(asl_clip=0.1).validate()
    assert TrainConfig(loss="asl", asl_clip=0.1, task="multi").validate().asl_clip == 0.1
