"""Export rough edges (issue 19 item 7): an --int8-only export is found by --runtime onnx and states its own
parity, model.json holds only what was measured, ONNX batches are dynamic by default, best.pt carries no
training state."""
from __future__ import annotations

import json
import shutil

import pytest

from convclass.checkpoint import load_checkpoint


@pytest.fixture
def run(trained_run, tmp_path):
    """A copy of the shared run, so exports written into its folder stay with this test."""
    return shutil.copytree(trained_run.run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("export"))


def test_best_pt_holds_no_training_state(trained_run):
    best_pt, last_pt = trained_run.run_dir / "best.pt", trained_run.run_dir / "last.pt"
    best, last = load_checkpoint(best_pt), load_checkpoint(last_pt)
    resume = {"optimizer_state", "scheduler_state", "scaler_state", "rng"}
    assert resume <= last.keys() and last["optimizer_state"]["state"]  # --resume continues from last.pt
    assert not resume & best.keys()
    assert best_pt.stat().st_size < last_pt.stat().st_size
    assert {"arch", "arch_args", "model_state", "classes", "preprocess", "metrics", "config"} <= best.keys()


@pytest.mark.timeout(120)
def test_int8_only_export_is_found_and_reports_its_own_parity(cli, run, rgb_folder):
    from convclass.export.onnx_runtime import OnnxModel
    from convclass.export.parity import compare_probs, load_samples
    from convclass.inference import load_model
    from convclass.models import model_from_checkpoint
    r = cli("export", run, "--int8")
    assert r.rc == 0, r
    path = run / "export" / "model-int8.onnx"
    assert path.exists() and not (run / "export" / "model.onnx").exists()
    meta = json.loads(path.with_suffix(".json").read_text())
    _, pre, _, ckpt = model_from_checkpoint(run)
    x = load_samples(ckpt, pre, None, 64, 0, need_test=True).test_x  # the images the export checked on
    own = compare_probs(load_model(run, "cpu", "fp32").predict_proba(x).numpy(),
                        OnnxModel(path).predict_proba(x).numpy())
    assert meta["parity"] == pytest.approx(own)
    assert meta["fp32_parity"]["max_abs_prob_diff"] <= 1e-4 < meta["parity"]["max_abs_prob_diff"]
    assert "int8 model against PyTorch" in r.out
    image = str(next(rgb_folder.rglob("*.png")))
    r = cli("predict", run, image, "--runtime", "onnx")
    assert r.rc == 0 and image in r.out, r


@pytest.mark.timeout(120)
def test_onnx_export_is_dynamic_and_states_only_what_was_measured(cli, run, tmp_path):
    import onnx
    import torch
    from convclass.export.onnx_runtime import OnnxModel
    assert cli("export", run, "--output", tmp_path / "m.onnx").rc == 0
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["batch"] == "dynamic" and not {"accuracy", "quantization", "fp32_parity"} & meta.keys()
    assert onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim[0].dim_param
    model = OnnxModel(tmp_path / "m.onnx")
    x = torch.zeros(5, 3, 16, 16, dtype=torch.uint8)
    assert model.fixed_batch is None and model.predict_logits(x, batch_size=5).shape == (5, 3)  # one run of 5
    assert cli("export", run, "--no-dynamic-batch", "--output", tmp_path / "f.onnx").rc == 0
    assert json.loads((tmp_path / "f.json").read_text())["batch"] == 1
    assert OnnxModel(tmp_path / "f.onnx").fixed_batch == 1
