"""export --format openvino and predict --runtime openvino: the IR holds its metadata, matches PyTorch on the run's
own test images, and a file that lies about itself is refused in one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import openvino as ov  # a dev dependency, installed by `make install`: CI runs this test, never skips it
import pytest

from conftest import assert_one_line_error
from convclass.errors import ConvclassError


@pytest.fixture(scope="module")
def ov_run(trained_run, tmp_path_factory):
    """A copy of the shared run with its OpenVINO export in the default place (export/model.openvino.xml)."""
    from convclass.export import export_model
    run = tmp_path_factory.mktemp("ov") / "run"
    shutil.copytree(trained_run.run_dir, run)
    return run, export_model(run, "openvino")


@pytest.mark.timeout(120)
def test_export_writes_ir_with_metadata_and_passes_parity(ov_run):
    run, res = ov_run
    assert res.path == run / "export" / "model.openvino.xml" and res.path.with_suffix(".bin").is_file()
    assert res.parity["top1_mismatches"] == 0 and res.parity["max_abs_prob_diff"] <= 1e-4
    assert "test split" in res.samples  # checked on the run's own images, not synthetic ones
    side = json.loads((run / "export" / "model.openvino.json").read_text())
    inside = json.loads(ov.Core().read_model(str(res.path)).get_rt_info(["convclass"]).astype(str))
    assert side["runtime"] == inside["runtime"] == "openvino" and side["batch"] == inside["batch"] == "dynamic"
    assert inside["classes"] == side["classes"] == ["blue", "green", "red"]


@pytest.mark.timeout(120)
def test_openvino_predictor_matches_pytorch_at_any_batch(ov_run):
    from convclass.export import load_predictor
    from convclass.inference import load_model
    from test_export import _test_images
    run, _ = ov_run
    x = _test_images(run)
    model = load_predictor(run, runtime="openvino")
    assert model.runtime == "openvino" and model.fixed_batch is None
    ref = load_model(run, "cpu", "fp32").predict_proba(x).numpy()
    for bs in (1, 5):
        got = model.predict_proba(x, batch_size=bs).numpy()
        assert (got.argmax(1) == ref.argmax(1)).all() and np.abs(got - ref).max() <= 1e-4
    one = model.predict(x[0].permute(1, 2, 0).numpy(), topk=1)  # an in-memory (H, W, C) image, like load_model's
    assert one.label == model.classes[int(ref[0].argmax())] and abs(one.prob - ref[0].max()) <= 1e-4


@pytest.mark.timeout(120)
def test_cli_predict_runtime_openvino_same_as_torch(cli, ov_run, rgb_folder, tmp_path):
    run, res = ov_run
    images = sorted(str(p) for p in rgb_folder.rglob("*.png"))[:4]
    outs = {}
    for rt, model in (("torch", run), ("openvino", run), ("auto", res.path)):  # the .xml itself too
        r = cli("predict", model, *images, "--runtime", rt, "--topk", "2", "--output", tmp_path / f"{rt}.json")
        assert r.rc == 0, r
        outs[rt] = json.loads((tmp_path / f"{rt}.json").read_text())
    for rt in ("openvino", "auto"):
        for a, b in zip(outs[rt], outs["torch"]):
            assert a["path"] == b["path"] and [c for c, _ in a["top"]] == [c for c, _ in b["top"]]
            assert [p for _, p in a["top"]] == pytest.approx([p for _, p in b["top"]], abs=1e-4)


@pytest.mark.timeout(120)
def test_parity_failure_leaves_no_files(trained_run, tmp_path, monkeypatch):
    from convclass.export import export_model
    from convclass.export.openvino_runtime import OpenVinoModel
    real = OpenVinoModel._logits
    monkeypatch.setattr(OpenVinoModel, "_logits", lambda self, x: real(self, x) + np.arange(3, dtype=np.float32))
    out = tmp_path / "bad.xml"
    with pytest.raises(ConvclassError, match="OpenVINO export does not match PyTorch"):
        export_model(trained_run.run_dir, "openvino", output=out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(120)
def test_ir_that_lies_is_refused_in_one_line(cli, ov_run, tmp_path):
    run, res = ov_run
    graph = ov.Core().read_model(str(res.path))
    meta = json.loads(graph.get_rt_info(["convclass"]).astype(str))
    cases = {"nometa.xml": (None, "no convclass metadata"), "wrongsize.xml": (dict(meta, img_size=32), "refusing"),
             "badformat.xml": (dict(meta, format="x"), "format tag")}
    for name, (m, needle) in cases.items():
        g = ov.Core().read_model(str(res.path))
        if m is None:
            g = ov.Model(g.outputs, g.get_parameters(), "bare")  # the same graph without rt_info
        else:
            g.set_rt_info(json.dumps(m), ["convclass"])
        ov.save_model(g, str(tmp_path / name), compress_to_fp16=False)
        assert_one_line_error(cli("predict", tmp_path / name, "x.png"), needle)
    (tmp_path / "junk.xml").write_text("<net><layers>")
    (tmp_path / "junk.bin").write_bytes(b"")
    assert_one_line_error(cli("predict", tmp_path / "junk.xml", "x.png"), "cannot load OpenVINO model")
    assert_one_line_error(cli("predict", run, "x.png", "--runtime", "openvino", "--precision", "bf16"),
                          "--precision")
    assert_one_line_error(cli("predict", tmp_path, "x.png", "--runtime", "openvino"), "--format openvino")
