"""The finetune recipe: the default with --pretrained (flags, a YAML file and --epochs still win; --recipe none opts
out; config.yaml records what ran), and its progressive random-resized crops, the same sizes after a resume."""
from __future__ import annotations

import pytest
import torch

from convclass.training import train  # without the test pass: the sizes are all this needs
from convclass.config import TrainConfig, load_config, save_config
from convclass.data.augment import progressive_sizes
from convclass.models import create_model
from convclass.training.recipes import RECIPES, training_sizes, with_recipe
from convclass.training.setup import resolve_config


def _flags(*argv: str) -> TrainConfig:
    from convclass.cli import build_parser
    from convclass.commands.common import config_from_args
    return resolve_config(config_from_args(build_parser().parse_args(["train", *argv])), {})


def test_pretrained_without_a_recipe_runs_finetune_under_the_flags_given():
    cfg = _flags("--model", "efficientnet_lite0", "--pretrained", "--lr", "0.01", "--augment", "flip-crop")
    assert cfg.recipe == "finetune"
    assert (cfg.optimizer, cfg.schedule, cfg.label_smoothing, cfg.lr_decay) == ("adamw", "onecycle", 0.1, 0.3)
    assert (cfg.lr, cfg.augment) == (0.01, "flip-crop")  # given explicitly: kept
    assert cfg.fine_tune == RECIPES["finetune"]["fine_tune"] and cfg.epochs == sum(cfg.fine_tune)
    api = resolve_config(None, {"model": "efficientnet_lite0", "pretrained": True})  # convclass.train(...)
    assert api.recipe == "finetune" and api.augment == "rrc-flip"
    plain = _flags("--model", "efficientnet_lite0")  # no --pretrained: no recipe
    assert plain.recipe is None and plain.optimizer == TrainConfig().optimizer


def test_a_yaml_file_sits_above_the_default_recipe(tmp_path):
    (tmp_path / "c.yaml").write_text("pretrained: true\nmodel: efficientnet_lite0\nschedule: cosine\n")
    cfg = _flags("--config", str(tmp_path / "c.yaml"))
    assert (cfg.recipe, cfg.schedule, cfg.optimizer) == ("finetune", "cosine", "adamw")


@pytest.mark.parametrize("argv, stages", [(["--epochs", "6"], [1, 5]), (["--epochs", "2"], [1, 1]),
                                          (["--epochs", "1"], [0, 1]),
                                          (["--epochs", "6", "--fine-tune", "2,2"], [2, 2])])
def test_epochs_set_the_stages_unless_fine_tune_is_given(argv, stages):
    cfg = _flags("--model", "efficientnet_lite0", "--pretrained", *argv)
    assert cfg.fine_tune == stages and cfg.epochs == sum(stages)


def test_recipe_none_keeps_the_plain_settings_and_every_saved_config_reruns_as_it_ran(tmp_path):
    plain = _flags("--model", "efficientnet_lite0", "--pretrained", "--recipe", "none")
    assert plain.recipe == "none" and plain.pretrained
    assert {k: v for k, v in plain.to_dict().items() if k not in ("recipe", "pretrained", "model")} == \
        {k: v for k, v in TrainConfig().to_dict().items() if k not in ("recipe", "pretrained", "model")}
    tuned = _flags("--model", "efficientnet_lite0", "--pretrained", "--epochs", "5", "--lr", "0.004")
    for cfg in (plain, tuned):
        save_config(cfg, tmp_path / "config.yaml")
        again = load_config(tmp_path)
        assert again == cfg and with_recipe(again, {}) == cfg  # `--config RUN/config.yaml`: the same run


def test_progressive_sizes_rise_over_the_all_layers_stage_and_end_at_full_size():
    for epochs, first in [(4, 1), (6, 1), (10, 1), (8, 0), (3, 0)]:
        sizes = progressive_sizes(224, epochs, first)
        assert len(sizes) == epochs and sizes[:first] == [224] * first and sizes[-1] == 224
        rising = sizes[first:]
        assert rising == sorted(rising) and rising[0] == 160  # about 0.75 x 224, a multiple of 32
        assert all(s % 32 == 0 for s in rising)
        assert rising.count(224) >= max(1, (epochs - first) // 3)  # the last third (at least one) at full size
    assert progressive_sizes(224, 2, 1) == [224, 224] and progressive_sizes(32, 5, 1) == [32] * 5


def test_sizes_are_progressive_only_for_models_that_take_smaller_inputs():
    cfg = TrainConfig(augment="rrc-flip", epochs=4, fine_tune=[1, 3])
    lite = create_model("efficientnet_lite0", num_classes=3, img_size=96)
    assert training_sizes(cfg, lite, 96, 3) == progressive_sizes(96, 4, 1) == [96, 64, 64, 96]
    assert lite.training, "the probe leaves the model in training mode"
    flat = create_model("mlp", num_classes=3, img_size=96)  # one input size only
    assert training_sizes(cfg, flat, 96, 3) == [96]
    assert training_sizes(cfg.update(freeze="backbone"), lite, 96, 3) == [96]  # a linear probe: evaluation's size
    assert training_sizes(cfg.update(augment="flip-crop"), lite, 96, 3) is None


@pytest.mark.timeout(120)
def test_pretrained_alone_says_its_recipe_and_records_it(cli, rgb_folder, tmp_path):
    r = cli("train", "--data", rgb_folder, "--model", "efficientnet_lite0", "--pretrained", "--img-size", "32",
            "--epochs", "1", "--batch-size", "12", "--threads", "1", "--device", "cpu", "--no-report",
            "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--name", "lite")
    assert r.rc == 0, r
    assert r.out.count("recipe: finetune (default with --pretrained; --recipe none for plain settings)") == 1
    saved = load_config(tmp_path / "runs" / "lite")
    assert (saved.recipe, saved.augment, saved.fine_tune, saved.epochs) == ("finetune", "rrc-flip", [0, 1], 1)


@pytest.mark.timeout(120)
def test_a_resumed_run_continues_with_the_same_sizes(tmp_path, rgb_folder, capsys):
    """Cut after the first small-size epoch and resumed, the run trains its last epoch at the size the whole run
    does, to the same numbers."""
    common = dict(data=str(rgb_folder), model="cnn3", recipe="finetune", img_size=96, epochs=3, batch_size=12,
                  device="cpu", threads=1, report=False, data_root=str(tmp_path / "cache"),
                  runs_dir=str(tmp_path / "runs"))
    whole = train(name="whole", **common)
    out = capsys.readouterr().out
    assert "epoch 2: training at 64x64 px" in out and "epoch 3: training at 96x96 px" in out
    cut = train(name="cut", callbacks=[lambda row, _: row["epoch"] == 2], **common)
    assert len(cut.history) == 2
    capsys.readouterr()
    resumed = train(resume=cut.run_dir, quiet=False)
    assert "epoch 3: training at 96x96 px" in capsys.readouterr().out
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
