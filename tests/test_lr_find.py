"""The LR range test: suggestion rules on known curves, a real run on digits, and `train --lr auto`."""
import math

import pytest
import torch
import yaml

from convclass.cli import main
from convclass.tuning.lr_finder import centred_average, lr_find, lr_range_test, suggest_steepest, suggest_valley


def _curve(n=120):
    """A loss that is flat, falls fastest at lr=1e-3 (a logistic in log10 lr), bottoms out, then explodes."""
    lrs = [10 ** (-7 + 8 * i / (n - 1)) for i in range(n)]
    losses = []
    for lr in lrs:
        x = math.log10(lr)
        fall = 2.0 / (1 + math.exp(-(x + 3) * 3))  # steepest at x = -3
        blow = math.exp(3 * (x + 0.5)) if x > -0.5 else 0.0
        losses.append(2.5 - fall + blow)
    return lrs, losses


def test_steepest_finds_the_fastest_fall():
    lrs, losses = _curve()
    assert 10 ** -3.2 <= suggest_steepest(lrs, losses) <= 10 ** -2.8


def test_steepest_ignores_a_dip_after_the_first_bump():
    lrs, losses = _curve()
    for i, lr in enumerate(lrs):  # unstable region: up by 0.5 around lr 3e-2, then a sharp dip at 1e-1
        x = math.log10(lr)
        if -1.8 < x < -0.6:
            losses[i] += 0.5 * math.sin((x + 1.8) / 1.2 * math.pi) - (0.6 if x > -1.2 else 0.0)
    assert 10 ** -3.3 <= suggest_steepest(lrs, losses) <= 10 ** -2.7


def test_valley_lies_inside_the_downhill_stretch():
    lrs, losses = _curve()
    v = suggest_valley(lrs, losses)
    bottom = lrs[losses.index(min(losses))]
    assert 1e-5 < v < bottom  # after the flat start, before the minimum


def test_centred_average_does_not_lag():
    vals = [0.0] * 10 + [1.0] * 10
    sm = centred_average(vals, 2)
    assert sm[9] == pytest.approx(0.4) and sm[10] == pytest.approx(0.6)  # symmetric around the step


def test_lr_find_on_digits(tmp_path):
    res = lr_find(data="digits", model="shallow", data_root=str(tmp_path / "cache"), runs_dir=str(tmp_path),
                  threads=1, quiet=True, num_iter=80, plot=tmp_path / "lr.png")
    assert math.isfinite(res.suggestion)
    assert res.lrs[0] <= res.suggestion <= res.lrs[-1]
    assert res.lrs[0] <= res.steepest <= res.lrs[-1]
    assert res.stopped_early  # 1e-7 .. 10 with Adam: the loss explodes before the end of the ramp
    assert min(res.losses) < res.losses[0] * 0.8  # the test saw the loss fall
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_range_test_leaves_the_model_untouched(tmp_path):
    from convclass.config import TrainConfig
    from convclass.data import prepare_data
    from convclass.models import create_model
    data = prepare_data("digits", data_root=str(tmp_path / "cache"), seed=0, default_size=32, verbose=False)
    model = create_model("shallow", num_classes=10, in_chans=data.channels, img_size=data.img_size)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr_range_test(model, data, TrainConfig(), torch.device("cpu"), num_iter=20)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_lr_auto_records_the_chosen_lr(tmp_path, capsys):
    rc = main(["train", "--data", "digits", "--model", "shallow", "--epochs", "1", "--lr", "auto",
               "--runs-dir", str(tmp_path), "--data-root", str(tmp_path / "cache"), "--threads", "1",
               "--name", "auto", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "lr-find: suggested lr" in out
    cfg = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert isinstance(cfg["lr"], float) and 1e-7 <= cfg["lr"] <= 10
    assert f"suggested lr {cfg['lr']:.3g}" in out
    assert (tmp_path / "lr-find-digits-shallow.png").exists()


# The range test runs the training loop's own steps (training/epoch.py) under the LRFinder hook, so whatever
# training supports, it supports: each augmentation, micro-batches, channels_last, every optimizer's groups.

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from convclass.data import prepare_data
    return prepare_data("digits", data_root=str(tmp_path_factory.mktemp("cache")), seed=0, default_size=32,
                        verbose=False)


def _model(data, name="shallow"):
    from convclass.models import create_model
    torch.manual_seed(0)
    return create_model(name, num_classes=len(data.classes), in_chans=data.channels, img_size=data.img_size)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("augment", __import__("convclass.data", fromlist=["AUGMENTATIONS"]).AUGMENTATIONS)
def test_range_test_runs_with_every_augmentation(digits, augment):
    """alt-flip-translate crashed the old copy of the loop (it called every augmentation as f(x))."""
    from convclass.config import TrainConfig
    res = lr_range_test(_model(digits), digits, TrainConfig(augment=augment, batch_size=128, workers=0),
                        torch.device("cpu"), num_iter=12)
    assert len(res.lrs) >= 10 and all(math.isfinite(v) for v in res.raw_losses)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["muon", "lr_decay"])
def test_range_test_keeps_the_ratios_of_the_parameter_groups(digits, how, monkeypatch):
    """Muon's groups and --lr-decay's layer groups train at fixed ratios to --lr: the ramp scales them all."""
    from convclass.config import TrainConfig
    cfg = (TrainConfig(optimizer="muon", lr=0.2, batch_size=128) if how == "muon"
           else TrainConfig(optimizer="sgd", lr=0.1, lr_decay=0.5, batch_size=128))
    made, seen = [], []  # optimizers built; every group's lr at each forward
    real_init = torch.optim.Optimizer.__init__

    def spy_init(self, *a, **k):
        made.append(self)
        real_init(self, *a, **k)
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", spy_init)
    model = _model(digits, "cnn3")
    model.register_forward_pre_hook(lambda m, args: seen.append([g["lr"] for g in made[-1].param_groups]))
    lr_range_test(model, digits, cfg, torch.device("cpu"), num_iter=12)
    first = [lr / seen[0][0] for lr in seen[0]]
    assert len(set(round(r, 9) for r in first)) > 1, "the optimizer should have groups at different rates"
    for lrs in seen:
        assert [lr / lrs[0] for lr in lrs] == pytest.approx(first)
    assert seen[-1][0] > 100 * seen[0][0]  # and the ramp moved them all


@pytest.mark.timeout(60)
def test_range_test_steps_in_micro_batches_and_channels_last(rgb_folder, tmp_path):
    from convclass.config import TrainConfig
    from convclass.data import prepare_data
    data = prepare_data(str(rgb_folder), data_root=str(tmp_path / "cache"), seed=0, verbose=False)
    model = _model(data).to(memory_format=torch.channels_last)
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append(
        (len(args[0]), args[0].is_contiguous(memory_format=torch.channels_last))))
    lr_range_test(model, data, TrainConfig(batch_size=16, micro_batch=8), torch.device("cpu"), num_iter=10)
    assert shapes and all(n <= 8 for n, _ in shapes), "every forward takes one micro-batch"
    assert all(cl for _, cl in shapes), "batches reach the model channels_last, as in training"


def test_lr_find_starts_from_the_weights_and_input_plan_of_the_run(trained_run, rgb_folder, tmp_path, monkeypatch):
    """--weights (or --pretrained): the range test scans the model training would start from."""
    import convclass.tuning.lr_finder as lf
    from convclass.checkpoint import load_checkpoint
    got = {}

    def capture(model, data, cfg, device, **kw):
        got.update(model=model, data=data)
        raise KeyboardInterrupt  # stop before the test itself
    monkeypatch.setattr(lf, "lr_range_test", capture)
    with pytest.raises(KeyboardInterrupt):
        lr_find(data=str(rgb_folder), model="shallow", weights=str(trained_run.run_dir / "best.pt"),
                data_root=str(tmp_path / "cache"), runs_dir=str(tmp_path), threads=1, quiet=True)
    best = load_checkpoint(trained_run.run_dir / "best.pt")
    state = got["model"].state_dict()
    assert all(torch.equal(state[k], v) for k, v in best["model_state"].items())
    assert got["data"].mean == pytest.approx(best["preprocess"]["mean"])


def test_lr_find_with_a_recipe_and_its_augmentation(tmp_path, capsys):
    """`convclass lr-find --recipe fast` crashed (TypeError in the alternating flips)."""
    rc = main(["lr-find", "--data", "digits", "--recipe", "fast", "--model", "shallow", "--num-iter", "12",
               "--batch-size", "256", "--micro-batch", "128", "--runs-dir", str(tmp_path), "--data-root",
               str(tmp_path / "cache"), "--threads", "1", "--quiet"])
    assert rc == 0
    assert "suggested lr" in capsys.readouterr().out


def test_plotting_leaves_pyplots_backend_alone(tmp_path):
    """plot_lr_find switched the process to Agg: called from a notebook, inline figures stopped showing."""
    import matplotlib
    from convclass.tuning.lr_finder import LRFindResult, plot_lr_find
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # any backend that is not Agg stands in for a notebook's
    try:
        lrs, losses = _curve()
        res = LRFindResult(lrs=lrs, losses=losses, raw_losses=losses, steepest=lrs[40], valley=lrs[30],
                           suggestion=lrs[30], method="valley", stopped_early=True)
        plot_lr_find(res, tmp_path / "lr.png")
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)
