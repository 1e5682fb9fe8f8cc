"""--precision: what auto picks on which hardware, and that a bf16 run really computes in bf16 while everything it
keeps (weights, optimizer state, BatchNorm statistics, checkpoints) stays fp32. bf16 is emulated, ~300x slower,
on a CPU without bf16 units, so the runs here are a few 8x8 images through a 1/8-width cnn3."""
from __future__ import annotations

import importlib
import warnings

import pytest
import torch
import torch.nn as nn

from conftest import assert_one_line_error
from synth import write_class_folders
from convclass import precision as P
from convclass.checkpoint import load_checkpoint
from convclass.errors import ConvclassError
from convclass.training import Hook, train

CPU = torch.device("cpu")
TINY = dict(model="cnn3", model_args={"width": 0.125}, epochs=1, batch_size=8, lr=0.01, device="cpu", threads=1,
            report=False, quiet=True)


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU reports these /proc/cpuinfo flags."""
    def use(*names: str) -> None:
        monkeypatch.delenv("CONVCLASS_CPU_BF16", raising=False)
        monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(names))
    return use


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "colours"
    write_class_folders(root, per_class=6, size=8)
    return root


class Dtypes(Hook):
    """Records (training?, output dtype) of the model's first convolution at every forward pass."""

    def __init__(self):
        self.seen: set[tuple[bool, torch.dtype]] = set()

    def on_fit_start(self, state) -> None:
        conv = next(m for m in state.model.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(lambda m, i, out: self.seen.add((m.training, out.dtype)))


def _train(folder, tmp_path, **kw):
    rec = Dtypes()
    res = train(data=str(folder), runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"),
                hooks=[rec], **{**TINY, **kw})
    return res, rec


def test_auto_follows_the_hardware(flags, monkeypatch):
    flags("avx2", "avx512_bf16")
    assert P.resolve_precision("auto", CPU) == "bf16"
    assert P.describe_precision("auto", "bf16", CPU) == "precision: bf16 autocast (CPU reports avx512_bf16)"
    flags("amx_bf16")
    assert P.resolve_precision("auto", "cpu") == "bf16"
    flags("avx2", "avx512f")  # AVX-512 without its BF16 extension: emulated, so fp32
    assert P.resolve_precision("auto", CPU) == "fp32"
    assert "no bf16 units" in P.describe_precision("auto", "fp32", CPU)
    assert P.resolve_precision("fp32", CPU) == "fp32"
    cuda = torch.device("cuda")  # only the decision is tested: no GPU is touched
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert P.resolve_precision("auto", cuda) == "bf16"
    assert P.resolve_precision("auto", cuda, amp=False) == "fp32"  # --no-amp keeps its meaning
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert P.resolve_precision("auto", cuda) == "fp16"
    assert P.resolve_precision("fp16", cuda) == "fp16"


def test_fp16_on_cpu_and_unknown_values_are_one_line_errors(cli, tiny_folder, tmp_path):
    with pytest.raises(ConvclassError, match="CUDA-only"):
        P.resolve_precision("fp16", CPU)
    with pytest.raises(ConvclassError, match="must be one of"):
        P.resolve_precision("fp8", CPU)
    res = cli("train", "--data", tiny_folder, "--model", "shallow", "--epochs", "1", "--device", "cpu",
              "--precision", "fp16", "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--no-report")
    assert_one_line_error(res, "fp16 autocast is CUDA-only", "bf16")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_forced_bf16_on_a_cpu_without_units_warns_but_runs(flags):
    flags("avx2")
    with pytest.warns(UserWarning, match="slower than fp32"):
        assert P.resolve_precision("bf16", CPU) == "bf16"
    flags("avx512_bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16", CPU) == "bf16"


def test_one_list_of_choices():
    from typing import get_args
    from convclass.cli import build_parser
    from convclass.config import Precision
    assert get_args(Precision) == P.PRECISIONS
    sub = build_parser()._subparsers._group_actions[0].choices
    for cmd in ("predict", "evaluate"):
        flag = next(a for a in sub[cmd]._actions if a.dest == "precision")
        assert tuple(flag.choices) == P.PRECISIONS and flag.default == "auto"


def test_autocast_contexts():
    x = torch.randn(2, 4)
    lin = nn.Linear(4, 3)
    with P.autocast("fp32", CPU):
        assert lin(x).dtype == torch.float32
    with P.autocast("bf16", "cpu"):
        assert lin(x).dtype == torch.bfloat16


@pytest.mark.timeout(120)
def test_bf16_run_computes_in_bf16_and_keeps_fp32(flags, tiny_folder, tmp_path, capsys):
    flags("avx512_bf16")  # auto then picks bf16, as on a CPU with the units
    res, rec = _train(tiny_folder, tmp_path, quiet=False)
    assert "precision: bf16 autocast (CPU reports avx512_bf16)" in capsys.readouterr().out
    assert rec.seen == {(True, torch.bfloat16), (False, torch.bfloat16)}  # training and validation
    assert res.state.precision == "bf16" and not res.state.scaler.is_enabled()  # no loss scaling for bf16
    assert all(p.dtype == torch.float32 for p in res.state.model.parameters())
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(res.run_dir / name)
        floats = _float_tensors(ckpt)
        assert floats and {t.dtype for _, t in floats} == {torch.float32}, name
        keys = {k for k, _ in floats}
        assert any(k.endswith("running_mean") for k in keys) and any(k.endswith("running_var") for k in keys)
        if name == "last.pt":  # best.pt keeps the model only; the optimizer travels in last.pt for --resume
            assert any(k.startswith("optimizer") for k in keys)  # SGD momentum buffers: fp32 too


def _float_tensors(obj, path: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        return [(path, obj)] if obj.is_floating_point() else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    return [f for k, v in items for f in _float_tensors(v, f"{path}.{k}" if path else str(k))]


@pytest.mark.timeout(120)
def test_default_here_is_fp32(flags, tiny_folder, tmp_path):
    flags("avx2")
    res, rec = _train(tiny_folder, tmp_path)
    assert rec.seen == {(True, torch.float32), (False, torch.float32)}
    assert res.state.precision == "fp32"


@pytest.mark.timeout(120)
def test_resume_keeps_bf16(flags, tiny_folder, tmp_path):
    flags("avx2")  # forced, not chosen: the resumed run must not fall back to auto's fp32
    with pytest.warns(UserWarning, match="slower"):
        first, _ = _train(tiny_folder, tmp_path, precision="bf16")
    with pytest.warns(UserWarning, match="slower"):
        res = train(resume=first.run_dir, epochs=2, hooks=[rec := Dtypes()])
    assert len(res.history) == 2 and res.state.precision == "bf16"
    assert (True, torch.bfloat16) in rec.seen and (True, torch.float32) not in rec.seen
    with pytest.raises(ConvclassError, match="precision"):
        train(resume=first.run_dir, epochs=3, precision="fp32")


def test_evaluation_paths_run_under_autocast_and_return_fp32():
    from convclass.inference import predict_logits
    from convclass.training.tta import tta_logits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    seen = []
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    ref = predict_logits(model, x, [0.5] * 3, [0.25] * 3, CPU)
    assert seen == [torch.float32]
    for mode in ("none", "flip", "flip-translate"):
        seen.clear()
        out = tta_logits(model, x, [0.5] * 3, [0.25] * 3, CPU, mode=mode, precision="bf16")
        assert out.dtype == torch.float32 and set(seen) == {torch.bfloat16}, mode
        if mode == "none":
            assert torch.allclose(out, ref, atol=0.1, rtol=0.05)


@pytest.mark.timeout(120)
def test_predict_and_evaluate_take_precision(cli, trained_run, rgb_folder, tmp_path, flags, monkeypatch):
    from convclass.inference import load_model
    lm = load_model(trained_run.run_dir, "cpu", "fp32")
    assert lm.precision == "fp32"
    flags("avx512_bf16")
    assert load_model(trained_run.run_dir, "cpu").precision == "bf16"  # auto by default, like training
    for cmd in (["predict", trained_run.run_dir, rgb_folder], ["evaluate", trained_run.run_dir]):
        res = cli(*cmd, "--device", "cpu", "--precision", "fp16")
        assert_one_line_error(res, "CUDA-only")
    res = cli("predict", trained_run.run_dir, rgb_folder, "--device", "cpu", "--precision", "bf16",
              "--output", tmp_path / "p.json")
    assert res.rc == 0, res
    from convclass.export import load_predictor
    with pytest.raises(ConvclassError, match="exported models .* run as they were exported"):
        load_predictor(tmp_path / "m.onnx", precision="bf16")
    ev = importlib.import_module("convclass.evaluation.evaluate")  # the module, not the function it exports
    asked = []

    def spy(path, device, precision="auto"):  # the report evaluate builds takes seconds; stop at the load
        asked.append(precision)
        raise ConvclassError("stopped by the test")
    monkeypatch.setattr(ev, "load_model", spy)
    assert_one_line_error(cli("evaluate", trained_run.run_dir, "--precision", "bf16"), "stopped by the test")
    assert asked == ["bf16"]


def test_env_hides_bf16_units_from_auto(flags, monkeypatch):
    flags("avx512_bf16")
    assert P.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setenv("CONVCLASS_CPU_BF16", "0")
    assert P.resolve_precision("auto", "cpu") == "fp32"
    assert "CONVCLASS_CPU_BF16=0" in P.describe_precision("auto", "fp32", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the units are there: no "emulated, slow" warning
        assert P.resolve_precision("bf16", "cpu") == "bf16"  # asked for by name, still given
