"""One Preprocess object (torch and numpy give the old numbers), builder bugs that surface as bugs, figures that
leave matplotlib's global backend alone, and no developer's folder searched for data."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from convclass.data.preprocess import Preprocess
from convclass.errors import ConvclassError

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]  # CIFAR-10's: not round in float32


def _all_pixels() -> torch.Tensor:
    """Every uint8 value in every channel: (4, 3, 8, 8)."""
    return torch.arange(256, dtype=torch.uint8).repeat(3, 1).reshape(3, 4, 8, 8).transpose(0, 1).contiguous()


def test_torch_and_numpy_inputs_equal_the_old_arithmetic_bit_for_bit():
    x = _all_pixels()
    pre = Preprocess(img_size=8, channels=3, mean=MEAN, std=STD)
    # the expressions of the removed copies (data.augment.normalize, export.runtime.normalize_np), verbatim
    m, s = torch.tensor(MEAN), torch.tensor(STD)
    old_torch = (x.float() / 255.0 - m[:, None, None]) / s[:, None, None]
    mn, sn = np.asarray(MEAN, np.float32)[:, None, None], np.asarray(STD, np.float32)[:, None, None]
    old_np = ((x.numpy().astype(np.float32) / np.float32(255.0) - mn) / sn).astype(np.float32)
    got = pre.to_input(x)
    assert got.dtype == torch.float32 and torch.equal(got, old_torch)
    assert np.array_equal(pre.to_input_np(x.numpy()), old_np)
    assert np.array_equal(pre.to_input_np(x.numpy()), got.numpy())  # ONNX inputs = PyTorch inputs
    from convclass.data import normalize
    from convclass.data.augment import normalize as augment_normalize
    from convclass.data.preprocess import normalize as the_one
    assert normalize is the_one and augment_normalize is the_one  # one copy; the old names still work


def test_statistics_are_made_once_per_device():
    pre = Preprocess(img_size=8, channels=3, mean=MEAN, std=STD)
    pre.to_input(_all_pixels())
    first = pre._stats[torch.device("cpu")]
    pre.to_input(_all_pixels(), "cpu")
    assert pre._stats[torch.device("cpu")] is first and len(pre._stats) == 1


def test_dict_round_trip_and_old_checkpoints_without_a_policy():
    pre = Preprocess(img_size=32, channels=3, mean=MEAN, std=STD)
    assert Preprocess.from_dict(pre.to_dict(), "x.pt", "hint") == pre
    old = {"img_size": 32, "channels": 3, "mean": MEAN, "std": STD}  # what checkpoints held before "resize"
    assert Preprocess.from_dict(old, "x.pt", "hint").resize == "squash"


GOOD = {"img_size": 16, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
BAD = {  # name: (changes, words the error must contain)
    "img_size 0": ({"img_size": 0}, "img_size"),
    "img_size 20000": ({"img_size": 20000}, "img_size"),
    "img_size text": ({"img_size": "16"}, "img_size"),
    "img_size bool": ({"img_size": True}, "img_size"),
    "channels 2": ({"channels": 2, "mean": [0.5] * 2, "std": [0.25] * 2}, "channels"),
    "mean too short": ({"mean": [0.5]}, "mean"),
    "mean NaN": ({"mean": [float("nan")] * 3}, "mean"),
    "mean above 1": ({"mean": [2.0] * 3}, "mean"),
    "std zero": ({"std": [0.0] * 3}, "std"),
    "resize unknown": ({"resize": "stretch"}, "resize"),
    "std missing": ({"std": None}, "lacks std"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_from_dict_refuses_bad_fields_in_one_line(case):
    change, needle = BAD[case]
    d = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ConvclassError) as e:
        Preprocess.from_dict(d, "model.pt", "retrain it")
    msg = str(e.value)
    assert needle in msg and "model.pt" in msg and msg.endswith("retrain it") and "\n" not in msg
    with pytest.raises(ConvclassError, match="not a mapping"):
        Preprocess.from_dict([16, 3], "model.pt", "retrain it")


def test_resize_policies_on_a_wide_image(tmp_path):
    """squash keeps the whole width (red left, blue right edges); crop keeps the green centre only."""
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, :20, 0], a[:, 20:40, 1], a[:, 40:, 2] = 255, 255, 255
    Image.fromarray(a).save(tmp_path / "wide.png")
    files = [str(tmp_path / "wide.png"), str(tmp_path / "missing.png")]
    squash, ok, bad = Preprocess(10, 3, [0.5] * 3, [0.5] * 3).decode_files(files)
    crop, _, _ = Preprocess(10, 3, [0.5] * 3, [0.5] * 3, resize="crop").decode_files(files)
    assert ok == files[:1] and [p for p, _ in bad] == files[1:]
    assert squash.shape == crop.shape == (1, 3, 10, 10)
    assert squash[0, 0, :, 0].min() > 200 and squash[0, 2, :, -1].min() > 200
    assert crop[0, 1].min() > 200 and crop[0, 0].max() < 60 and crop[0, 2].max() < 60


def test_a_type_error_inside_a_builder_is_a_bug_not_a_bad_argument():
    from convclass.models import create_model, register_model
    from convclass.models.registry import REGISTRY

    @register_model("_buggy_for_test")
    def _buggy(num_classes: int, in_chans: int = 3, img_size: int = 32, depth: int = 2):
        return len(num_classes)  # a bug: TypeError from inside the builder

    try:
        with pytest.raises(TypeError, match="has no len"):
            create_model("_buggy_for_test", num_classes=3)
        with pytest.raises(ConvclassError, match="bad model argument.*did you mean depth"):
            create_model("_buggy_for_test", num_classes=3, detph=3)
    finally:
        REGISTRY.pop("_buggy_for_test")
    with pytest.raises(ConvclassError, match="did you mean width"):
        create_model("cnn3", num_classes=3, widht=2)


@pytest.mark.timeout(120)
def test_figures_leave_matplotlibs_backend_and_figure_list_alone(tmp_path):
    """A notebook's backend must survive convclass drawing its figures: `matplotlib.use("Agg")` inside the
    library switched it (inline plots stopped showing). svg stands in for a notebook backend: it needs no display."""
    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")
        import numpy as np
        from pathlib import Path
        from convclass.evaluation.plots import plot_confusion_matrix
        from convclass.interpret.draw import plot_overlay
        from convclass.reporting.figures import plot_confusion
        from convclass.plotting import plot_mosaic
        from convclass.tuning.plots import plot_history
        out = Path({str(tmp_path)!r})
        cm = [[3, 1], [0, 4]]
        plot_confusion(cm, ["a", "b"], out / "a.png")
        plot_confusion_matrix(cm, ["a", "b"], out / "b.png")
        plot_overlay(np.zeros((3, 8, 8), np.uint8), np.ones((8, 8)) / 2, "t", out / "c.png")
        plot_mosaic([[np.zeros((3, 8, 8), np.uint8)]], out / "d.png", "t")
        plot_history([], out / "e.png")
        import matplotlib.pyplot as plt
        print(matplotlib.get_backend(), len(plt.get_fignums()))
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["svg", "0"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["a.png", "b.png", "c.png", "d.png", "e.png"]


def test_builtin_data_is_never_looked_for_in_a_home_folder(tmp_path, monkeypatch):
    """tiny-imagenet was also searched in ~/data/tiny-imagenet-200, a developer's own folder."""
    from convclass.data.builtin import load_builtin
    home = tmp_path / "home"
    (home / "data" / "tiny-imagenet-200").mkdir(parents=True)
    (home / "data" / "tiny-imagenet-200" / "wnids.txt").write_text("n01443537\n")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ConvclassError, match="tiny-imagenet not found"):
        load_builtin("tiny-imagenet", tmp_path / "root")
