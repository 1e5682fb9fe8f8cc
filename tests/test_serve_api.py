"""The JSON API against a real `convclass serve` process on 127.0.0.1 (plus the micro-batcher in process)."""
from __future__ import annotations

import asyncio
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import start_server, stop_server
from http_client import multipart, png_bytes, post_images, request
from synth import CLASS_COLOURS, rgb_image


def _image(colour: str, seed: int, size: int = 40) -> bytes:
    return png_bytes(rgb_image(CLASS_COLOURS[colour], size, seed=seed))


def _reference(run_dir, tmp_path, images: list[bytes]):
    """Probabilities from the PyTorch path (`convclass.inference.predict`) for the same files."""
    from convclass.inference import predict
    paths = []
    for i, data in enumerate(images):
        p = tmp_path / f"ref{i}.png"
        p.write_bytes(data)
        paths.append(str(p))
    results, skipped = predict(run_dir, paths, topk=3, device="cpu")
    assert not skipped
    return results


def test_health_model_and_schema(served, trained_run):
    from convclass.checkpoint import load_checkpoint
    ckpt = load_checkpoint(trained_run.run_dir)
    status, health = served.get("/health")
    assert status == 200 and health["status"] == "ok"
    status, info = served.get("/api/model")
    assert info["classes"] == list(ckpt["classes"])
    assert info["arch"] == "shallow" and info["runtime"] == "torch" and info["gradcam"] is True
    assert info["test_acc"] == pytest.approx(ckpt["metrics"]["test_acc"])
    assert info["img_size"] == ckpt["preprocess"]["img_size"] and info["limits"]["max_upload_bytes"] == 10 * 2 ** 20
    status, schema = served.get("/openapi.json")
    assert schema["openapi"].startswith("3.")
    assert {"/api/predict", "/api/model", "/health"} <= set(schema["paths"])
    assert "413" in schema["paths"]["/api/predict"]["post"]["responses"]


def test_page_and_headers(served):
    r = request(served.url, "GET", "/")
    assert r.status == 200 and b'id="file"' in r.body and b"/app.js" in r.body
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert request(served.url, "GET", "/app.js").status == 200
    assert request(served.url, "GET", "/nope").status == 404
    assert request(served.url, "GET", "/api/predict").status == 405
    # DNS-rebinding guard: a page on another name that resolves to 127.0.0.1 gets nothing
    assert request(served.url, "GET", "/api/model", headers={"Host": "attacker.example"}).status == 400


def test_predict_matches_pytorch_path(served, trained_run, tmp_path):
    images = [_image("red", 1), _image("green", 2), _image("blue", 3)]
    r = post_images(served.url, [(f"im{i}.png", d) for i, d in enumerate(images)], "?topk=3")
    assert r.status == 200, r
    preds = r.json()["predictions"]
    assert [p["file"] for p in preds] == ["im0.png", "im1.png", "im2.png"]
    for got, ref in zip(preds, _reference(trained_run.run_dir, tmp_path, images)):
        assert [t["class"] for t in got["top"]] == [c for c, _ in ref["top"]]
        assert [t["prob"] for t in got["top"]] == pytest.approx([p for _, p in ref["top"]], abs=1e-5)
    # a raw image body (no multipart) and a chunked body without Content-Length give the same answer
    raw = request(served.url, "POST", "/api/predict?topk=3", images[0], {"Content-Type": "image/png"})
    chunks = iter([images[0][:50], images[0][50:]])
    chunked = request(served.url, "POST", "/api/predict?topk=3", chunks, {"Content-Type": "image/png"}, chunked=True)
    for rr in (raw, chunked):
        assert rr.status == 200, rr
        assert rr.json()["predictions"][0]["top"] == preds[0]["top"]


def test_gradcam_overlay(served):
    r = post_images(served.url, [("a.png", _image("red", 5, size=64))], "?gradcam=1")
    assert r.status == 200, r
    url = r.json()["predictions"][0]["gradcam"]
    assert url.startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert overlay.size == (192, 192) and overlay.mode == "RGB"  # a 64-px upload enlarged to the shown size


def test_overlay_keeps_the_photo_where_the_model_did_not_look():
    """Tinted in proportion to the heat: a cold half is the photo itself (a uniform blend hid it)."""
    from convclass.serve.cam import overlay_png
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[:, :, 1] = np.arange(8)[None, :] * 30  # a green ramp
    cam = np.zeros((8, 8), np.float32)
    cam[:, 6:] = 1.0  # hot right edge only
    url = overlay_png(Image.fromarray(photo), cam)
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert out.shape == (192, 192, 3)
    left = np.asarray(Image.fromarray(photo).resize((192, 192), Image.NEAREST))[:, :96]
    assert np.array_equal(out[:, :96], left)  # cold: untouched photo pixels
    assert out[:, -8:, 0].mean() > 70 and out[:, :96, 0].max() == 0  # hot: tinted red; the photo has none


def test_concurrent_requests_all_answered(served):
    images = [_image(c, s) for s in range(4) for c in CLASS_COLOURS]
    solo = [post_images(served.url, [("x.png", d)]).json()["predictions"][0]["top"] for d in images]
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda d: post_images(served.url, [("x.png", d)]), images * 3))
    assert all(r.status == 200 for r in replies), [r for r in replies if r.status != 200][:2]
    for i, r in enumerate(replies):  # batching must not mix up whose answer is whose
        got = r.json()["predictions"][0]["top"]
        assert [t["class"] for t in got] == [t["class"] for t in solo[i % len(images)]]
        assert [t["prob"] for t in got] == pytest.approx([t["prob"] for t in solo[i % len(images)]], abs=1e-5)
    _, health = served.get("/health")
    assert health["images"] >= len(replies) and health["server_errors"] == 0


def test_microbatcher_batches_waiting_requests():
    """While the model is busy, later requests queue up and run together in one call, in order."""
    from convclass.serve.batcher import MicroBatcher
    calls = []

    def slow_model(x):
        calls.append(len(x))
        time.sleep(0.05)
        return x.float().flatten(1)[:, :2]

    async def main():
        b = MicroBatcher(slow_model, max_batch=64)
        await b.start()
        try:
            xs = [torch.full((1 + i % 2, 1, 2, 2), i, dtype=torch.uint8) for i in range(10)]
            outs = await asyncio.gather(*(b.predict(x) for x in xs))
        finally:
            await b.stop()
        return xs, outs
    xs, outs = asyncio.run(main())
    for x, o in zip(xs, outs):
        assert o.shape == (len(x), 2) and torch.all(o == x[0, 0, 0, 0].float())
    assert sum(calls) == sum(len(x) for x in xs)
    assert len(calls) < len(xs), calls    # at least some requests shared a model call


def test_serves_onnx_export(trained_run, tmp_path_factory):
    """An exported .onnx file is served by ONNX Runtime with the same answers; Grad-CAM is refused clearly."""
    from convclass.export import export_model
    out = tmp_path_factory.mktemp("onnx-export") / "model.onnx"
    export_model(trained_run.run_dir, "onnx", output=out, dynamic_batch=True)
    srv = start_server(out, tmp_path_factory.mktemp("serve-onnx"))
    try:
        _, info = srv.get("/api/model")
        assert info["runtime"] == "onnx" and info["gradcam"] is False
        img = _image("green", 9)
        r = post_images(srv.url, [("g.png", img)], "?topk=3")
        ref = _reference(trained_run.run_dir, tmp_path_factory.mktemp("ref"), [img])[0]
        assert [t["prob"] for t in r.json()["predictions"][0]["top"]] == pytest.approx(
            [p for _, p in ref["top"]], abs=1e-4)
        cam = post_images(srv.url, [("g.png", img)], "?gradcam=1")
        assert cam.status == 400 and "PyTorch" in cam.json()["error"]
    finally:
        stop_server(srv)


def test_serve_defaults_to_a_fresh_onnx_export(tmp_path):
    """`serve RUN` runs the fastest runtime that matches PyTorch (ONNX Runtime, bench/onnx_vs_torch.py) when the
    run has an fp32 export at least as new as best.pt; otherwise best.pt with PyTorch, saying why."""
    import os
    from convclass.serve.server import default_runtime
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "best.pt").write_bytes(b"x")
    assert default_runtime(run, "auto")[:2] == (run, "auto")
    assert "does not exist" in default_runtime(run, "auto")[2]
    onnx = run / "export" / "model.onnx"
    onnx.write_bytes(b"x")
    os.utime(run / "best.pt", (1, 1))
    assert default_runtime(run, "auto")[:2] == (onnx, "onnx")
    assert default_runtime(run, "torch") == (run, "torch", None)  # asked for: kept (Grad-CAM)
    os.utime(onnx, (0, 0))  # retrained after the export: the export is stale
    path, runtime, note = default_runtime(run, "auto")
    assert (path, runtime) == (run, "auto") and "older than best.pt" in note
    assert default_runtime(onnx, "auto") == (onnx, "auto", None)  # a file given: served as given
