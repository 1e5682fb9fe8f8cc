"""A multi-label run from the CLI and the Python API: evaluate prints the label metrics, predict lists every label
at or above its threshold (CSV/JSON), load_model and the ONNX/TorchScript exports carry the task and thresholds."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from convclass import load_model
from convclass.checkpoint import load_checkpoint, save_checkpoint
from conftest import assert_one_line_error
from multilabel_synth import write_multilabel_csv


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    from convclass import train
    base = tmp_path_factory.mktemp("mlp")
    csv_path = write_multilabel_csv(base / "data", n=60, rare=0.25)
    res = train(data=str(csv_path), model="shallow", epochs=3, batch_size=8, lr=0.01, device="cpu", quiet=True,
                runs_dir=str(base / "runs"), data_root=str(base / "cache"), name="ml")
    return res.run_dir, base / "data" / "images"


def _expected(lm, files):
    probs = lm.predict_proba(lm.preprocess_files([str(f) for f in files])[0]).numpy()
    return [{c for c, p, t in zip(lm.classes, row, lm.thresholds) if p >= t} for row in probs], probs


@pytest.mark.timeout(120)
def test_load_model_predicts_every_label_at_its_threshold(ml_run):
    run, images = ml_run
    lm = load_model(run, device="cpu")
    assert lm.task == "multi" and lm.thresholds == load_checkpoint(run / "best.pt")["thresholds"]
    files = sorted(images.glob("*.png"))[:6]
    want, probs = _expected(lm, files)
    assert not np.allclose(probs.sum(1), 1)  # sigmoid per label, not a softmax
    preds = lm.predict([str(f) for f in files])
    assert [{c for c, _ in p.labels} for p in preds] == want
    assert all(lab == sorted(lab, key=lambda cp: -cp[1]) for lab in (p.labels for p in preds))
    assert (run / "report.html").is_file() and "Per label" in (run / "report.html").read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_predict_writes_the_labels_above_threshold(cli, ml_run, tmp_path, fmt):
    run, images = ml_run
    files = sorted(images.glob("*.png"))[:5]
    out = tmp_path / f"p.{fmt}"
    res = cli("predict", run, *files, "--device", "cpu", "--output", out)
    assert res.rc == 0, res.err
    want, _ = _expected(load_model(run, device="cpu"), files)
    if fmt == "json":
        got = [{c for c, _ in r["labels"]} for r in json.loads(out.read_text())]
    else:
        rows = list(csv.DictReader(out.open()))
        got = [{r[f"label{i + 1}"] for i in range(int(r["n_labels"]))} for r in rows]
    assert got == want


@pytest.mark.timeout(120)
def test_cli_evaluate_prints_label_metrics(cli, ml_run):
    run, _ = ml_run
    res = cli("evaluate", run, "--device", "cpu")
    assert res.rc == 0, res.err
    assert "mAP (macro)" in res.out and "Hamming loss" in res.out and "threshold" in res.out
    m = json.loads((run / "eval-test" / "metrics.json").read_text())
    assert m["thresholds"] == load_checkpoint(run / "best.pt")["thresholds"]
    assert m["map"] == pytest.approx(json.loads((run / "test_metrics.json").read_text())["map"], abs=1e-6)
    assert (run / "eval-test" / "per_label.csv").read_text().startswith("label,precision")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exports_carry_task_and_thresholds(ml_run, tmp_path, fmt):
    from convclass.export import export_model, load_predictor
    run, images = ml_run
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.torchscript.pt")
    res = export_model(run, fmt, output=out)
    meta = json.loads(res.sidecar.read_text()) if res.sidecar != res.path else None
    lm = load_model(run, device="cpu")
    if meta is not None:
        assert meta["task"] == "multi" and meta["thresholds"] == lm.thresholds
    exported = load_predictor(out, runtime=fmt)
    assert exported.task == "multi" and exported.thresholds == pytest.approx(lm.thresholds)
    x = lm.preprocess_files([str(f) for f in sorted(images.glob("*.png"))[:8]])[0]
    assert torch.allclose(exported.predict_proba(x), lm.predict_proba(x), atol=1e-4)


@pytest.mark.parametrize("bad", [{"task": "regression"}, {"thresholds": [0.5, "x", 0.5]}, {"thresholds": [2, 0, 0]},
                                 {"thresholds": [0.5]}])
def test_damaged_task_or_thresholds_are_one_line_errors(cli, ml_run, tmp_path, bad):
    run, images = ml_run
    ckpt = load_checkpoint(run / "best.pt")
    save_checkpoint({**{k: v for k, v in ckpt.items() if k != "format"}, **bad}, tmp_path / "bad.pt")
    assert_one_line_error(cli("predict", tmp_path / "bad.pt", next(images.glob("*.png")), "--device", "cpu"),
                          "refusing", next(iter(bad)))


async def _asgi(app, method: str, path: str, body: bytes = b"", ctype: str = "") -> dict:
    """One request through the ASGI app in this process (no server to start: seconds, not a minute)."""
    sent, out = False, []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        out.append(message)
    headers = [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers + ([(b"content-type", ctype.encode())] if ctype else []), "http_version": "1.1",
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": ""}
    await app(scope, receive, send)
    return json.loads(b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body"))


@pytest.mark.timeout(60)
def test_serve_lists_every_label_above_its_threshold(ml_run):
    import asyncio

    from convclass.serve import make_app
    from http_client import multipart
    run, images = ml_run
    files = sorted(images.glob("*.png"))[:3]
    lm = load_model(run, device="cpu")
    app = make_app(lm)
    body, ctype = multipart([("image", f.name, f.read_bytes()) for f in files])

    async def ask():
        async with app.router.lifespan_context(app):
            return await _asgi(app, "GET", "/api/model"), await _asgi(app, "POST", "/api/predict", body, ctype)
    info, answer = asyncio.run(ask())
    assert info["task"] == "multi" and info["thresholds"] == pytest.approx(lm.thresholds)
    want, _ = _expected(lm, files)
    got = answer["predictions"]
    assert [{d["class"] for d in p["labels"]} for p in got] == want
    assert all(d["prob"] >= d["threshold"] for p in got for d in p["labels"])


@pytest.mark.timeout(120)
def test_explain_a_chosen_label_with_sigmoid_probabilities(ml_run, tmp_path):
    from convclass.interpret import explain_images
    run, images = ml_run
    files = [str(f) for f in sorted(images.glob("*.png"))[:2]]
    r = explain_images(run, files, target="green", output=tmp_path, device="cpu")
    lm = load_model(run, device="cpu")
    want, probs = _expected(lm, files)
    for it, labels, row in zip(r["items"], want, probs):
        assert it["target"] == "green" and {c for c, _ in it["labels"]} == labels
        assert it["probability"] == pytest.approx(float(row.max()), abs=1e-5)
