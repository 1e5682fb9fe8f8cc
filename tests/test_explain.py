"""Grad-CAM is right, not just drawn: on data whose class is a small marker at a random place, the heatmap
peak must fall on the marker. Plus the `explain` command's files and errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error

SIZE, MARK = 32, 6   # image and marker side, pixels
MARGIN = 2           # pixels around the marker that still count as "on" it (the 8x8 CAM is upsampled 4x)


def _write(root: Path, n: int, seed: int) -> dict[str, tuple[int, int]]:
    """Grey noise (60..190) with a 6x6 marker at a random place: white for class `light`, black for `dark`."""
    rng = np.random.default_rng(seed)
    where = {}
    for i in range(n):
        cls = ("light", "dark")[i % 2]
        a = rng.integers(60, 190, (SIZE, SIZE)).astype(np.uint8)
        y, x = rng.integers(0, SIZE - MARK + 1, 2)
        a[y:y + MARK, x:x + MARK] = 255 if cls == "light" else 0
        p = root / cls / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(p)
        where[str(p)] = (int(y), int(x))
    return where


@pytest.fixture(scope="module")
def marker_run(tmp_path_factory):
    from convclass import train
    base = tmp_path_factory.mktemp("marker")
    _write(base / "data" / "train", 600, 0)
    where = _write(base / "data" / "test", 100, 1)
    res = train(data=str(base / "data"), model="cnn3", model_args={"width": 0.5}, epochs=3, lr=3e-3,
                batch_size=64, device="cpu", runs_dir=str(base / "runs"), data_root=str(base / "cache"),
                quiet=True, report=False, name="marker")
    return res, where


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradcam_peak_falls_on_the_marker(marker_run, method):
    from convclass.data.augment import normalize
    from convclass.inference import load_model
    from convclass.interpret import grad_cam
    res, where = marker_run
    assert res.test_metrics["accuracy"] >= 0.95, res.test_metrics["accuracy"]
    lm = load_model(res.run_dir, "cpu")
    paths = sorted(where)
    x, ok, _ = lm.preprocess_files(paths)
    cams, target, _ = grad_cam(lm.model, normalize(x, torch.tensor(lm.mean), torch.tensor(lm.std)), None, method)
    assert cams.shape == (len(paths), SIZE, SIZE) and float(cams.min()) >= 0 and float(cams.max()) <= 1
    hits = 0
    for p, cam in zip(ok, cams):
        y, x0 = where[p]
        py, px = np.unravel_index(int(cam.argmax()), cam.shape)
        hits += (y - MARGIN <= py < y + MARK + MARGIN) and (x0 - MARGIN <= px < x0 + MARK + MARGIN)
    assert hits / len(ok) >= 0.9, f"{method}: peak on the marker for {hits}/{len(ok)} images"


def test_gradcam_of_the_other_class_differs(marker_run):
    """Explaining a class the image does not show must not reproduce the predicted-class map."""
    from convclass.data.augment import normalize
    from convclass.inference import load_model
    from convclass.interpret import grad_cam
    res, where = marker_run
    lm = load_model(res.run_dir, "cpu")
    x, _, _ = lm.preprocess_files(sorted(where)[:20])
    xn = normalize(x, torch.tensor(lm.mean), torch.tensor(lm.std))
    own, tgt, _ = grad_cam(lm.model, xn)
    other, tgt2, _ = grad_cam(lm.model, xn, target=0 if int(tgt[0]) == 1 else 1)
    assert int(tgt2[0]) != int(tgt[0])
    assert float((own[0] - other[0]).abs().mean()) > 0.05


def test_explain_cli_writes_overlays_feature_maps_and_filters(marker_run, tmp_path, cli):
    res, where = marker_run
    imgs = sorted(where)[:3]
    out = tmp_path / "ex"
    r = cli("explain", res.run_dir, *imgs, "--method", "gradcam++", "--feature-maps", "features.0",
            "--output", out, "--device", "cpu")
    assert r.rc == 0, r
    overlays = sorted(out.glob("*_gradcam++.png"))
    feats = sorted(out.glob("*_features_features.0.png"))
    assert len(overlays) == 3 and len(feats) == 3 and (out / "filters.png").exists()
    w, h = Image.open(overlays[0]).size
    assert w > 300 and h > 100
    assert "predicted" in r.out and "features.8" in r.out  # the default layer is the last convolution
    r = cli("explain", res.run_dir, imgs[0], "--device", "cpu")
    assert r.rc == 0, r
    assert len(list((res.run_dir / "explain").glob("*_gradcam.png"))) == 1  # default output: RUN/explain


def test_explain_errors_are_one_line(marker_run, tmp_path, cli):
    res, where = marker_run
    img = sorted(where)[0]
    assert_one_line_error(cli("explain", res.run_dir, img, "--layer", "nope", "--output", tmp_path),
                          "no layer named")
    assert_one_line_error(cli("explain", res.run_dir, img, "--target", "zebra", "--output", tmp_path), "zebra")
    assert_one_line_error(cli("explain", res.run_dir, tmp_path / "missing.png"), "no such file")


def test_mlp_has_no_default_layer():
    from convclass.errors import ConvclassError
    from convclass.interpret import grad_cam
    from convclass.models import create_model
    m = create_model("mlp", num_classes=3, in_chans=1, img_size=8)
    with pytest.raises(ConvclassError, match="no convolution"):
        grad_cam(m, torch.zeros(2, 1, 8, 8))
