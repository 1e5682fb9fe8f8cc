"""The crop resize policy (aspect kept, shorter side scaled, centre crop) and its crop_pct: how photos decode,
how the policy travels in checkpoints and exported files, and that every path that reads photos (predict, the
pipeline's test pass, ONNX) decodes them the same way."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from convclass.data.preprocess import Preprocess
from convclass.errors import ConvclassError

RED = (230, 20, 20)


def _photo(path, w: int = 60, h: int = 40, bar: int = 6, circle: int = 30):
    """White w x h with a red bar `bar` px wide on the left and a black circle of diameter `circle` centred."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, bar - 1, h - 1], fill=RED)
    r = circle / 2
    d.ellipse([w / 2 - r, h / 2 - r, w / 2 + r - 1, h / 2 + r - 1], fill=(0, 0, 0))
    img.save(path)
    return path


def _dark_box(a: np.ndarray) -> tuple[int, int]:
    """(width, height) of the dark pixels' bounding box in (H, W, 3) uint8."""
    ys, xs = np.nonzero(a.max(-1) < 100)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _red(a: np.ndarray) -> int:
    return int(((a[..., 0] > 180) & (a[..., 1] < 120)).sum())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """2 classes x 10 noisy landscape photos of two shapes with a bar on the left: crop and squash differ."""
    root = tmp_path_factory.mktemp("photos") / "shapes"
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(200, 60, 60), (60, 60, 200)]):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(10):
            w, h = (60, 40) if i % 2 else (64, 36)
            a = np.clip(np.asarray(colour) + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
            a[:, :6] = (255, 255, 0)
            Image.fromarray(a).save(root / f"c{c}" / f"{i}.png")
    return root


def test_crop_keeps_the_aspect_and_cuts_the_side_bar(tmp_path):
    from convclass.data.images import decode_file
    p = _photo(tmp_path / "p.png")
    squash = decode_file(p, 20, 3, "squash")
    crop = decode_file(p, 20, 3, "crop")
    w, h = _dark_box(squash)
    assert w < 0.8 * h                           # squashed: the circle becomes an ellipse
    w, h = _dark_box(crop)
    assert abs(w - h) <= 1 and w == pytest.approx(15, abs=1)   # cropped: still a circle, 30 px * 20 / 40
    assert _red(squash) > 0 and _red(crop) == 0  # the side bar is outside the centre square
    # crop_pct 0.8: the shorter side goes to round(20 / 0.8) = 25 before the centre 20 x 20, so the circle grows
    tight = decode_file(p, 20, 3, "crop", 0.8)
    w, h = _dark_box(tight)
    assert abs(w - h) <= 1 and w == pytest.approx(30 * 25 / 40, abs=1)


def test_crop_pct_round_trips_and_is_checked(tmp_path):
    pre = Preprocess(img_size=224, channels=3, mean=[0.5] * 3, std=[0.25] * 3, resize="crop", crop_pct=0.875)
    d = pre.to_dict()
    assert d["crop_pct"] == 0.875 and Preprocess.from_dict(d, "x.pt", "hint") == pre
    torch.save({"preprocess": d}, tmp_path / "c.pt")   # through torch's weights-only loader, as checkpoints are
    assert Preprocess.from_dict(torch.load(tmp_path / "c.pt", weights_only=True)["preprocess"], "c.pt", "") == pre
    old = {k: v for k, v in d.items() if k != "crop_pct"}
    assert Preprocess.from_dict(old, "old.pt", "hint").crop_pct == 1.0
    for bad in (0.3, 1.5, float("nan"), "0.9", True, None):
        with pytest.raises(ConvclassError, match="crop_pct"):
            Preprocess.from_dict({**d, "crop_pct": bad}, "bad.pt", "re-train")
    with pytest.raises(ConvclassError, match="crop_pct"):   # a crop fraction means nothing to squash
        Preprocess.from_dict({**d, "resize": "squash"}, "bad.pt", "re-train")


def test_decode_cache_keeps_squash_and_crop_apart(photos, tmp_path):
    from convclass.data import prepare_data
    kw = dict(data_root=str(tmp_path), img_size=20, seed=0, verbose=False)
    squash = prepare_data(str(photos), **kw)
    crop = prepare_data(str(photos), resize="crop", **kw)
    cached = sorted((tmp_path / "decoded").glob("*.npy"))
    assert len(cached) == 6                      # 3 splits x 2 policies, never one file for both
    yellow = lambda x: (x[:, 0] > 230) & (x[:, 1] > 230) & (x[:, 2] < 30)  # noqa: E731  (the side bar)
    assert yellow(squash.train.x)[..., 0].all() and not yellow(crop.train.x).any()
    assert squash.preprocess.resize == "squash" and crop.preprocess.resize == "crop"
    again = prepare_data(str(photos), resize="crop", **kw)   # a warm run finds its own policy's file
    assert torch.equal(again.train.x, crop.train.x) and len(list((tmp_path / "decoded").glob("*.npy"))) == 6
    with pytest.raises(ConvclassError, match="crop_pct"):
        prepare_data(str(photos), resize="squash", crop_pct=0.9, **kw)


def test_decode_progress_bar_only_when_asked_and_interactive(photos, monkeypatch, capsys):
    from convclass.data import decode
    from convclass.data.folder import scan_folder
    s = scan_folder(photos).train
    monkeypatch.setattr(decode, "PROGRESS_MIN", 1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    decode.decode_set(s, 12, 3, progress=False)
    assert "decoding" not in capsys.readouterr().err
    decode.decode_set(s, 12, 3)
    err = capsys.readouterr().err
    assert "decoding" in err and "/20 [" in err          # a bar over the 20 files, with its rate and ETA


def test_views_crop_or_resize_stored_batches_and_pass_augmented_ones():
    from types import SimpleNamespace
    from convclass.training.finetune import input_view, stored_size
    seen = []
    model = type("Rec", (torch.nn.Module,), {"forward": lambda self, x: seen.append(x) or x})()
    x = torch.arange(28 * 28, dtype=torch.float32).reshape(1, 1, 28, 28)
    crop = SimpleNamespace(train=SimpleNamespace(x=torch.zeros(1, 1, 28, 28)), img_size=24, resize="crop")
    view = input_view(model, crop)
    view(x)
    assert torch.equal(seen[-1], x[..., 2:26, 2:26])   # the centre of a stored batch (evaluation)
    view(torch.zeros(2, 1, 20, 20))
    assert seen[-1].shape[-1] == 20                  # an augmentation's 20 px crops pass unchanged
    small = SimpleNamespace(train=SimpleNamespace(x=torch.zeros(1, 1, 8, 8)), img_size=16, resize="squash")
    view = input_view(model, small)
    view(torch.zeros(1, 1, 8, 8))
    assert seen[-1].shape[-1] == 16                  # CIFAR-style small stored images: resized as before
    view(torch.zeros(1, 1, 12, 12))
    assert seen[-1].shape[-1] == 12
    assert stored_size(224) == 256 and (stored_size(128) - 128) % 2 == 0


def test_finetune_recipe_plans_the_crop_layout(photos, tmp_path):
    from convclass.config import TrainConfig
    from convclass.training.finetune import input_plan
    cfg = TrainConfig(data=str(photos), data_root=str(tmp_path), img_size=224)
    plan = input_plan(cfg.update(recipe="finetune"), 64)
    assert (plan.decode_size, plan.img_size, plan.resize, plan.crop_pct) == (256, 224, "crop", 0.875)
    assert plan.prepare_kwargs()["resize"] == "crop" and plan.prepare_kwargs()["img_size"] == 256
    plain = input_plan(cfg, 64)
    assert plain.resize == "squash" and plain.decode_size == 224


@pytest.fixture(scope="module")
def crop_run(photos, tmp_path_factory):
    from convclass import train
    base = tmp_path_factory.mktemp("croprun")
    return train(data=str(photos), model="shallow", recipe="finetune", fine_tune="0,1", augment="none",
                 img_size=24, batch_size=8, device="cpu", report=False, runs_dir=str(base / "runs"),
                 data_root=str(base / "cache"), quiet=True, name="crop", seed=0)


def test_predict_decodes_photos_as_the_runs_evaluation(crop_run, photos):
    from convclass.checkpoint import load_checkpoint
    from convclass.data import prepare_data
    from convclass.inference import load_model, predict
    from convclass.reporting import load_predictions
    pre = load_checkpoint(crop_run.run_dir / "best.pt")["preprocess"]
    assert pre["resize"] == "crop" and pre["crop_pct"] == pytest.approx(24 / 28) and pre["img_size"] == 24
    # The run's layout: photos stored at 28 x 28 (aspect kept), the centre 24 x 24 evaluated
    cfg = crop_run.config
    stored = prepare_data(str(photos), data_root=cfg.data_root, img_size=28, resize="crop", seed=0, verbose=False)
    assert stored.train.x.shape[-1] == 28
    paths = stored.test.paths
    lm = load_model(crop_run.run_dir, "cpu")
    x, ok, bad = lm.preprocess_files(paths)
    assert ok == paths and not bad
    assert torch.equal(x, stored.test.x[..., 2:26, 2:26])   # pixel for pixel what evaluation saw
    probs = lm.predict_proba(x).numpy()
    saved = load_predictions(crop_run.run_dir)              # the pipeline's test pass (stored as float16)
    assert saved["paths"] == paths and np.allclose(probs, saved["probs"], atol=2e-3)
    rows, _ = predict(lm, paths, topk=2)
    top = np.array([dict(r["top"])[lm.classes[0]] for r in rows])
    assert np.allclose(top, probs[:, 0], atol=1e-5)


def test_onnx_export_carries_crop_pct(crop_run, tmp_path):
    import onnx
    from convclass.export import export_model, load_predictor
    from convclass.inference import load_model
    from convclass.reporting import load_predictions
    res = export_model(crop_run.run_dir, "onnx", output=tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert json.loads(props["convclass"])["crop_pct"] == pytest.approx(24 / 28)
    assert json.loads(props["crop_pct"]) == pytest.approx(24 / 28)
    assert "test split" in json.loads(res.sidecar.read_text())["parity_samples"]
    exported, lm = load_predictor(res.path), load_model(crop_run.run_dir, "cpu")
    assert exported.preprocess == lm.preprocess
    paths = [str(p) for p in load_predictions(crop_run.run_dir)["paths"]]
    x_onnx, _, _ = exported.preprocess_files(paths)
    x_torch, _, _ = lm.preprocess_files(paths)
    assert torch.equal(x_onnx, x_torch)


def test_old_checkpoint_without_the_policy_loads_as_squash(crop_run, tmp_path):
    from convclass.checkpoint import load_checkpoint
    from convclass.inference import load_model
    ckpt = load_checkpoint(crop_run.run_dir / "best.pt")
    ckpt["preprocess"] = {k: v for k, v in ckpt["preprocess"].items() if k not in ("resize", "crop_pct")}
    torch.save(ckpt, tmp_path / "old.pt")
    pre = load_model(tmp_path / "old.pt", "cpu").preprocess
    assert (pre.resize, pre.crop_pct, pre.img_size) == ("squash", 1.0, 24)


def test_serve_decodes_uploads_through_the_checkpoint_preprocess(tmp_path):
    from convclass.serve.uploads import decode_upload
    p = _photo(tmp_path / "p.png")
    pre = Preprocess(img_size=20, channels=3, mean=[0.5] * 3, std=[0.5] * 3, resize="crop", crop_pct=0.8)
    a, thumb = decode_upload(p.read_bytes(), pre, 10**6, thumb=50)
    x, _, _ = pre.decode_files([str(p)])
    assert np.array_equal(a, x[0].permute(1, 2, 0).numpy())
    assert thumb.size[0] == thumb.size[1] and _red(np.asarray(thumb)) == 0   # the overlay's image: what it saw
