"""Checkpoints that lie about their format or their architecture: every command rebuilds models through
model_from_checkpoint, which must refuse them in one line, at once, without allocating the model they describe."""
from __future__ import annotations

import time

import pytest
import torch

from conftest import assert_one_line_error
from convclass.checkpoint import FORMAT
from convclass.errors import ConvclassError

CLASSES = ["a", "b", "c"]
ARGS = {"num_classes": 3, "in_chans": 3, "img_size": 16, "width": 0.25}


def _checkpoint(**changes) -> dict:
    """A real convclass checkpoint of a small cnn3, built here (no training); `changes` edit its fields."""
    from convclass.data.preprocess import Preprocess
    from convclass.models import create_model
    torch.manual_seed(0)
    model = create_model("cnn3", **ARGS)
    ck = {"format": FORMAT, "arch": "cnn3", "arch_args": dict(ARGS), "model_state": model.state_dict(),
          "classes": list(CLASSES), "preprocess": Preprocess(16, 3, [0.5] * 3, [0.25] * 3).to_dict(), "metrics": {}}
    ck.update(changes)
    return {k: v for k, v in ck.items() if v is not None}


def _peak_rss_growth(fn) -> float:
    """MB the process's peak resident memory grew by while fn ran (Linux: VmHWM, reset through clear_refs)."""
    def kb(field: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith(field))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    before = kb("VmRSS:")
    fn()
    return (kb("VmHWM:") - before) / 1024


def test_an_honest_checkpoint_rebuilds_from_a_file_or_a_dict(tmp_path):
    from convclass.models import model_from_checkpoint
    ck = _checkpoint()
    torch.save(ck, tmp_path / "ok.pt")
    for src in (tmp_path / "ok.pt", ck):
        model, pre, classes, loaded = model_from_checkpoint(src)
        assert not model.training and classes == CLASSES and pre.img_size == 16 and loaded["arch"] == "cnn3"
        assert all(torch.equal(v, ck["model_state"][k]) for k, v in model.state_dict().items())


def test_a_dict_is_checked_like_a_file(tmp_path):
    """Handed over as a dict, a checkpoint with inf weights is refused as it is when read from a file."""
    from convclass.models import model_from_checkpoint
    ck = _checkpoint()
    name = next(k for k, v in ck["model_state"].items() if v.is_floating_point())
    ck["model_state"][name].view(-1)[0] = float("inf")
    torch.save(ck, tmp_path / "inf.pt")
    for src in (tmp_path / "inf.pt", ck):
        with pytest.raises(ConvclassError, match=name):
            model_from_checkpoint(src)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tag,needle", [(None, "no format tag"), ("convclass-checkpoint-v2", "newer convclass"),
                                        ("convclass-checkpoint-v0", "format tag"), ("pytorch", "format tag"),
                                        (7, "format tag")])
def test_format_tags_are_checked(cli, tmp_path, rgb_folder, tag, needle):
    """A file from a newer convclass (or from elsewhere) was read as if this version wrote it."""
    from convclass.inference import load_model
    path = tmp_path / "tagged.pt"
    ck = _checkpoint()
    ck["format"] = tag
    torch.save({k: v for k, v in ck.items() if v is not None}, path)
    with pytest.raises(ConvclassError, match=needle) as e:
        load_model(path, "cpu")
    assert "\n" not in str(e.value) and "tagged.pt" in str(e.value)
    image = next(rgb_folder.rglob("*.png"))
    assert_one_line_error(cli("predict", path, image), needle)


HOSTILE = {  # name: (arch_args changes, words the error must contain)
    "width 64 (GBs of weights)": ({"width": 64.0}, "do not fit cnn3"),
    "width 1e9": ({"width": 1e9}, "cnn3"),
    "width as text": ({"width": "64"}, "width"),
    "width NaN": ({"width": float("nan")}, "width"),
    "unknown knob": ({"hook": 1}, "it takes width, dropout"),
    "num_classes 10^9": ({"num_classes": 10 ** 9}, "num_classes"),
    "in_chans 4096": ({"in_chans": 4096}, "in_chans"),
    "img_size 20000": ({"img_size": 20000}, "img_size"),
    "img_size missing": ({"img_size": None}, "arch_args"),
    "a path for a knob": ({"dropout": "/etc/passwd"}, "dropout"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_arch_args_are_refused_before_anything_is_allocated(tmp_path, case):
    from convclass.models import model_from_checkpoint
    change, needle = HOSTILE[case]
    args = {k: v for k, v in {**ARGS, **change}.items() if v is not None}
    torch.save(_checkpoint(arch_args=args), tmp_path / "crafted.pt")
    errors = []

    def load():
        try:
            model_from_checkpoint(tmp_path / "crafted.pt")
        except ConvclassError as e:
            errors.append(str(e))
    t0 = time.perf_counter()
    grew = _peak_rss_growth(load)
    assert time.perf_counter() - t0 < 10
    assert grew < 200, f"{grew:.0f} MB allocated for a refused file"  # width 64 was 3.5 GB before
    assert len(errors) == 1 and needle in errors[0] and "crafted.pt" in errors[0] and "\n" not in errors[0]


@pytest.mark.timeout(60)
def test_other_lies_in_the_checkpoint(tmp_path):
    from convclass.models import model_from_checkpoint
    grey = {"img_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]}  # the weights are for RGB
    for changes, needle in (({"arch": "cnn3x"}, "did you mean cnn3"), ({"arch_args": "cnn3"}, "arch_args"),
                            ({"classes": ["a", "a", "b"]}, "classes"), ({"arch": 7}, "arch"),
                            ({"model_state": {"w": [1, 2]}}, "model_state"), ({"preprocess": grey}, "in_chans")):
        with pytest.raises(ConvclassError, match=needle) as e:
            model_from_checkpoint(_checkpoint(**changes))
        assert "\n" not in str(e.value)
