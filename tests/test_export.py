"""Export to ONNX / TorchScript / int8: metadata in and beside the file, parity with PyTorch, the ONNX predict path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from convclass.errors import ConvclassError


@pytest.fixture(scope="module")
def exports(trained_run, tmp_path_factory):
    """The shared run exported three ways (each export runs its own parity check)."""
    from convclass.export import export_model
    out = tmp_path_factory.mktemp("exports")
    return {
        "fixed": export_model(trained_run.run_dir, "onnx", output=out / "fixed.onnx", dynamic_batch=False),
        "dynamic": export_model(trained_run.run_dir, "onnx", output=out / "dyn.onnx"),
        "torchscript": export_model(trained_run.run_dir, "torchscript", output=out / "m.torchscript.pt"),
    }


def _torch_probs(run_dir, x):
    from convclass.inference import load_model
    return load_model(run_dir, "cpu", "fp32").predict_proba(x).numpy()  # the reference: fp32 on any CPU


def _test_images(run_dir):
    from convclass.checkpoint import load_checkpoint
    from convclass.data import prepare_data
    cfg = load_checkpoint(run_dir)["config"]
    pd = prepare_data(cfg["data"], data_root=cfg["data_root"], img_size=16, channels=3, seed=cfg["seed"])
    return pd.test.x


def test_onnx_metadata_inside_and_beside(exports, trained_run):
    import onnx
    from convclass.checkpoint import load_checkpoint
    ckpt = load_checkpoint(trained_run.run_dir)
    res = exports["fixed"]
    assert res.path.exists() and res.sidecar == res.path.with_suffix(".json")
    props = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    inside = json.loads(props["convclass"])
    beside = json.loads(res.sidecar.read_text())
    for meta in (inside, beside):
        assert meta["classes"] == list(ckpt["classes"]) and meta["arch"] == "shallow"
        assert meta["img_size"] == 16 and meta["channels"] == 3
        assert meta["mean"] == pytest.approx(ckpt["preprocess"]["mean"])
        assert meta["std"] == pytest.approx(ckpt["preprocess"]["std"])
    assert json.loads(props["classes"]) == list(ckpt["classes"])
    assert beside["parity"]["top1_mismatches"] == 0 and beside["parity"]["max_abs_prob_diff"] <= 1e-4
    assert "test split" in beside["parity_samples"]          # checked on the run's own images, not noise


@pytest.mark.parametrize("kind", ["fixed", "dynamic", "torchscript"])
def test_exported_model_matches_pytorch(exports, trained_run, kind):
    from convclass.export import load_predictor
    x = _test_images(trained_run.run_dir)
    assert len(x) >= 5
    model = load_predictor(exports[kind].path, runtime="torchscript" if kind == "torchscript" else "auto")
    assert model.fixed_batch == (1 if kind == "fixed" else None)
    got = model.predict_proba(x).numpy()
    ref = _torch_probs(trained_run.run_dir, x)
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert np.abs(got - ref).max() <= 1e-4


def test_parity_failure_is_loud_and_leaves_no_file(trained_run, tmp_path, monkeypatch):
    from convclass.export import export_model
    from convclass.export.onnx_runtime import OnnxModel
    from convclass.export.parity import check_parity
    with pytest.raises(ConvclassError, match="top-1 mismatches"):
        check_parity(np.array([[0.6, 0.4]]), np.array([[0.4, 0.6]]), "x")
    with pytest.raises(ConvclassError, match="max .dprob. 2.00e-04"):
        check_parity(np.array([[0.7, 0.3]]), np.array([[0.7002, 0.2998]]), "x")
    real = OnnxModel.predict_proba
    monkeypatch.setattr(OnnxModel, "predict_proba", lambda self, x, bs=256: real(self, x, bs) * 0.999 + 0.0005)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ConvclassError, match="does not match PyTorch"):
        export_model(trained_run.run_dir, "onnx", output=out)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_synthetic_images_when_data_is_gone(trained_run, tmp_path):
    from convclass.export import export_model
    with pytest.warns(UserWarning, match="synthetic"):
        res = export_model(trained_run.run_dir, "onnx", output=tmp_path / "m.onnx", data=str(tmp_path / "nowhere"))
    assert "synthetic" in res.samples and res.parity["n"] == 64 and res.parity["top1_mismatches"] == 0


def test_cli_int8_prints_accuracy_drop(cli, trained_run, tmp_path):
    out = tmp_path / "q.onnx"
    r = cli("export", trained_run.run_dir, "--format", "onnx", "--int8", "--dynamic-batch", "--output", out)
    assert r.rc == 0, r
    assert "test accuracy: PyTorch fp32" in r.out and "int8" in r.out and "drop" in r.out
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["precision"] == "int8" and meta["accuracy"]["n"] > 0
    assert abs(meta["accuracy"]["drop"]) <= 0.5   # a 3-colour task survives 8 bits
    import onnx
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" in ops or "ConvInteger" in ops or "QLinearConv" in ops


def test_cli_predict_runtime_onnx_same_output_as_torch(cli, trained_run, rgb_folder, exports, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    (run / "export").mkdir(exist_ok=True)
    shutil.copy(exports["dynamic"].path, run / "export" / "model.onnx")
    images = sorted(str(p) for p in rgb_folder.rglob("*.png"))[:6]
    outs = {}
    for rt in ("torch", "onnx"):
        r = cli("predict", run, *images, "--runtime", rt, "--topk", "2", "--output", tmp_path / f"{rt}.json")
        assert r.rc == 0, r
        outs[rt] = json.loads((tmp_path / f"{rt}.json").read_text())
    assert [o["path"] for o in outs["onnx"]] == [o["path"] for o in outs["torch"]] == images
    for a, b in zip(outs["onnx"], outs["torch"]):
        assert [c for c, _ in a["top"]] == [c for c, _ in b["top"]]
        assert [p for _, p in a["top"]] == pytest.approx([p for _, p in b["top"]], abs=1e-4)
    # the .onnx file itself is accepted as the model too
    r = cli("predict", exports["fixed"].path, images[0])
    assert r.rc == 0 and images[0] in r.out


def test_cli_errors_are_one_line(cli, trained_run):
    assert_one_line_error(cli("export", trained_run.run_dir, "--format", "torchscript", "--int8"), "--int8")
    assert_one_line_error(cli("predict", trained_run.run_dir, "x.png", "--runtime", "onnx"), "convclass export")
