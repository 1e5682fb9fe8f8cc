"""Hostile model files: TorchScript that writes files when loaded or run, and lying metadata in .onnx, TorchScript
and .pt files. No command may run the code of a file it was not told to trust, and every lie is a one-line error
before any image is decoded for it.
"""
from __future__ import annotations

import json
import shutil
import time
import warnings
from typing import Tuple

import pytest
import torch

from conftest import assert_one_line_error, run_cli_subprocess
from convclass.errors import ConvclassError

META = {"format": "convclass-export-v1", "arch": "crafted", "classes": ["a", "b", "c"], "img_size": 8, "channels": 3,
        "mean": [0.5] * 3, "std": [0.25] * 3, "batch": "dynamic", "metrics": {}, "name": "crafted"}


class _Payload(torch.nn.Module):
    """Creates `<dir>/on_load` when torch.jit.load unpickles it (__setstate__) and `<dir>/on_forward` when run:
    torch.from_file(shared=True) creates and writes any path the process can, e.g. a .pth file in site-packages."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def forward(self, x):
        t = torch.from_file(self.folder + "/on_forward", shared=True, size=4, dtype=torch.uint8)
        t.fill_(66)
        return torch.zeros(x.shape[0], 3) + t[0].float() * 0  # uses t, so the scripted graph keeps the write

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.folder, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.folder, self.training = state[0], state[1]
        t = torch.from_file(self.folder + "/on_load", shared=True, size=4, dtype=torch.uint8)
        t.fill_(65)
        self.folder = self.folder + "" if int(t[0]) == 65 else self.folder


def _markers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("on_"))


def _script(folder, path, extra: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        mod = torch.jit.script(_Payload(str(folder)))
        torch.jit.save(mod, str(path), _extra_files={"convclass.json": json.dumps(META)} if extra else {})
    return path


@pytest.fixture
def evil(tmp_path):
    """(TorchScript file with convclass metadata, one without, folder its code writes into)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    return _script(marks, tmp_path / "evil.pt"), _script(marks, tmp_path / "bare.pt", extra=False), marks


@pytest.fixture
def image(rgb_folder):
    return str(next(rgb_folder.rglob("*.png")))


@pytest.mark.timeout(60)
def test_the_payload_is_live_when_explicitly_trusted(evil):
    """The files below do write when TorchScript is opted into; so a missing marker elsewhere means refused."""
    from convclass.export import load_predictor
    path, _, marks = evil
    model = load_predictor(path, runtime="torchscript")
    assert _markers(marks) == ["on_forward", "on_load"]   # loading ran code; the output check ran forward
    assert model.classes == META["classes"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("runtime", [None, "torch", "onnx", "auto"])
def test_predict_never_loads_torchscript_implicitly(cli, evil, image, runtime):
    path, bare, marks = evil
    flags = ["--runtime", runtime] if runtime else []
    for model in (path, bare):
        res = cli("predict", model, image, *flags)
        assert_one_line_error(res, "TorchScript", "--runtime torchscript", ".onnx")
    assert _markers(marks) == []


@pytest.mark.timeout(90)
def test_serve_refuses_torchscript_before_listening(evil):
    """The real command: it exits at once with one line; before the fix it loaded the file and served it."""
    from convclass.export import load_predictor
    path, bare, marks = evil
    for model in (path, bare):
        with pytest.raises(ConvclassError, match="TorchScript"):
            load_predictor(model)  # what serve_model and the Python API call
    res = run_cli_subprocess("serve", path, "--port", "0", timeout=60)
    assert_one_line_error(res, "TorchScript", "--runtime torchscript")
    assert _markers(marks) == []


@pytest.mark.timeout(120)
def test_every_other_command_reads_weights_only(cli, evil, image, trained_run, rgb_folder, tmp_path):
    """evaluate, explain, export, --weights, --resume and compare load checkpoints weights-only, which refuses a
    TorchScript archive without compiling it (torch.load itself included)."""
    from convclass.checkpoint import load_checkpoint
    path, bare, marks = evil
    for model in (path, bare):
        with pytest.raises(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note that the zip looks like TorchScript
            torch.load(model, weights_only=True)
        with pytest.raises(ConvclassError):
            load_checkpoint(model)
    run = tmp_path / "run"  # a run folder whose checkpoints were swapped for the payload
    shutil.copytree(trained_run.run_dir, run)
    for name in ("best.pt", "last.pt"):
        shutil.copy(path, run / name)
    train = ["train", "--data", rgb_folder, "--model", "shallow", "--epochs", "1", "--device", "cpu",
             "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--no-report", "--quiet"]
    for args in (["evaluate", path], ["evaluate", run], ["explain", path, image, "--output", tmp_path / "x"],
                 ["export", path, "--output", tmp_path / "m.onnx"], ["compare", run, trained_run.run_dir],
                 [*train, "--weights", path], [*train, "--weights", bare], ["train", "--resume", run]):
        assert_one_line_error(cli(*args), "TorchScript" if path in args or bare in args else "")
    assert _markers(marks) == []
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "x").exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- lying metadata ----------------------------------------------------------------------------------------

def _onnx(path, meta, width: int = 3, shape=("N", "C", "H", "W"), raw: str | None = None):
    """A real ONNX graph (mean over H, W, then a (3, width) matrix) carrying `meta` as its convclass metadata."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", width])],
                              [numpy_helper.from_array(np.ones((3, width), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    prop = model.metadata_props.add()
    prop.key, prop.value = "convclass", raw if raw is not None else json.dumps(meta)
    onnx.save(model, str(path))
    return path


LIES = {  # name: (metadata changes, words the error must contain)
    "img_size 20000": ({"img_size": 20000}, "img_size"),
    "img_size text": ({"img_size": "16"}, "img_size"),
    "img_size bool": ({"img_size": True}, "img_size"),
    "img_size fraction": ({"img_size": 8.5}, "img_size"),
    "channels 7": ({"channels": 7, "mean": [0.5] * 7, "std": [0.25] * 7}, "channels"),
    "std zero": ({"std": [0, 0, 0]}, "std"),
    "std denormal": ({"std": [1e-310] * 3}, "std"),
    "std too short": ({"std": [0.25]}, "std"),
    "mean NaN": ({"mean": [float("nan"), 0.5, 0.5]}, "mean"),
    "mean infinite": ({"mean": [float("inf"), 0.5, 0.5]}, "mean"),
    "mean text": ({"mean": ["a", "b", "c"]}, "mean"),
    "classes empty": ({"classes": []}, "classes"),
    "classes not names": ({"classes": [1, 2, 3]}, "classes"),
    "classes repeated": ({"classes": ["a", "a", "b"]}, "classes"),
    "classes != outputs": ({"classes": ["a", "b", "c", "d", "e"]}, "5 classes"),
    "batch huge": ({"batch": 10 ** 9}, "batch"),
    "batch text": ({"batch": "lots"}, "batch"),
    "metrics text": ({"metrics": {"test_acc": "high"}}, "metrics"),
    "arch missing": ({"arch": None}, "arch"),
    "format missing": ({"format": None}, "no format tag"),
    "format newer": ({"format": "convclass-export-v2"}, "newer convclass"),
    "format foreign": ({"format": "convclass-checkpoint-v1"}, "format tag"),
    "task unknown": ({"task": "regression"}, "task"),
    "thresholds NaN": ({"task": "multi", "thresholds": [float("nan"), 0.5, 0.5]}, "thresholds"),
    "thresholds short": ({"task": "multi", "thresholds": [0.5]}, "thresholds"),
    "thresholds text": ({"task": "multi", "thresholds": "0.5"}, "thresholds"),
    "thresholds huge list": ({"task": "multi", "thresholds": [0.5] * 10 ** 5}, "thresholds"),
    "threshold above 1": ({"task": "multi", "thresholds": [0.5, 7, 0.5]}, "thresholds"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lie", list(LIES))
def test_lying_onnx_metadata_is_refused_before_use(tmp_path, lie):
    from convclass.export import load_predictor
    change, needle = LIES[lie]
    path = _onnx(tmp_path / "lie.onnx", {**META, **change})
    t0 = time.perf_counter()
    with pytest.raises(ConvclassError) as e:
        load_predictor(path)
    assert time.perf_counter() - t0 < 10  # refused, not allocated: img_size 20000 took gigabytes per request
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.timeout(60)
def test_onnx_graph_and_metadata_must_agree(tmp_path):
    from convclass.export import load_predictor
    grey = {**META, "channels": 1, "mean": [0.5], "std": [0.25]}
    for meta, shape, needle in ((grey, ("N", 3, 8, 8), "graph"), ({**META, "img_size": 16}, ("N", 3, 8, 8), "graph"),
                                (META, (10 ** 6, 3, 8, 8), "batch"), (grey, ("N", "C", 8, 8), "cannot run")):
        with pytest.raises(ConvclassError, match=needle):
            load_predictor(_onnx(tmp_path / "m.onnx", meta, shape=shape))
    for raw in ("{not json", "[" * 100000, '"a string"'):
        with pytest.raises(ConvclassError, match="metadata"):
            load_predictor(_onnx(tmp_path / "m.onnx", None, raw=raw))
    model = load_predictor(_onnx(tmp_path / "m.onnx", META, shape=(1, 3, 8, 8)))  # an honest file still loads
    assert model.fixed_batch == 1 and model.predict_proba(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).shape == (2, 3)


@pytest.mark.timeout(60)
def test_cli_answers_lying_files_with_one_line(cli, tmp_path, image):
    for i, change in enumerate(({"std": [0, 0, 0]}, {"classes": []}, {"channels": 7})):
        res = cli("predict", _onnx(tmp_path / f"m{i}.onnx", {**META, **change}), image)
        assert_one_line_error(res, "refusing", "convclass export")


@pytest.mark.timeout(90)
def test_lying_torchscript_metadata_is_refused_before_its_code_runs(tmp_path):
    """Even with the opt-in, the metadata is read from the zip and checked before torch.jit.load."""
    from convclass.export import load_predictor
    marks = tmp_path / "marks"
    marks.mkdir()
    path = _script(marks, tmp_path / "lie.pt")
    for change, needle in (({"img_size": 20000}, "img_size"), ({"std": [0, 0, 0]}, "std"),
                           ({"classes": []}, "classes")):
        _rewrite_extra(path, {**META, **change})
        with pytest.raises(ConvclassError, match=needle):
            load_predictor(path, runtime="torchscript")
    assert _markers(marks) == []


def _rewrite_extra(path, meta) -> None:
    import zipfile
    with zipfile.ZipFile(path) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, json.dumps(meta) if name.endswith("extra/convclass.json") else data)


@pytest.mark.timeout(60)
def test_lying_checkpoint_preprocessing_is_refused(cli, trained_run, tmp_path, image):
    """A .pt checkpoint's preprocessing gets the same checks: std 0 gave NaN probabilities with exit 0, and more
    class names than outputs gave wrong names. (img_size 20000 is left to load_predictor's test: before the fix
    predict would decode each image at 20000x20000.)"""
    good = torch.load(trained_run.run_dir / "best.pt", weights_only=True)
    for i, (pre, classes, needle) in enumerate((({"std": [0.0, 0.0, 0.0]}, None, "std"),
                                                ({}, ["a", "b", "c", "d", "e"], "5 classes"))):
        ck = dict(good, preprocess={**good["preprocess"], **pre}, classes=classes or good["classes"])
        torch.save(ck, tmp_path / f"lie{i}.pt")
        assert_one_line_error(cli("predict", tmp_path / f"lie{i}.pt", image), needle)
