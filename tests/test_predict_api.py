"""`model.predict(x, topk)` on images held in memory (issue 19 item 1): a path, a PIL image, a numpy array of any
dtype and mode, or a list of them give the answer the image's file gives, for PyTorch and exported models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convclass.errors import ConvclassError


@pytest.fixture(scope="module")
def model(trained_run):
    from convclass.inference import load_model
    return load_model(trained_run.run_dir, "cpu", "fp32")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 20x28 RGB image with detail (random), saved as PNG: the file is the reference for the array forms."""
    a = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(a).save(path)
    return a, str(path)


def _same(got, want):
    assert [c for c, _ in got.top] == [c for c, _ in want]
    assert [p for _, p in got.top] == pytest.approx([p for _, p in want], abs=1e-6)


def test_path_pil_array_and_lists_answer_as_the_file(model, rgb_folder):
    from convclass.inference import Prediction, predict
    path = str(sorted(rgb_folder.rglob("*.png"))[0])
    want = predict(model, [path], topk=2)[0][0]["top"]  # the file-based API
    img = Image.open(path)
    for x in (path, Path(path), img, np.asarray(img)):
        got = model.predict(x, topk=2)
        assert isinstance(got, Prediction) and (got.label, got.prob) == want[0]
        _same(got, want)
    many = model.predict([path, img, np.asarray(img)], topk=2)
    assert [p.source for p in many] == [path, "PIL RGB image 16x16", "array (16, 16, 3) uint8"]
    for got in many + model.predict(np.stack([np.asarray(img)] * 2), topk=2):  # a 4-D array is a batch
        _same(got, want)
    assert model.predict([]) == [] and len(model.predict(path).top) == 3  # topk past the classes: all of them


def test_every_dtype_and_mode_gives_the_files_pixels(model, photo, tmp_path):
    a, path = photo
    x = model.preprocess_images
    ref = x([path])
    rgba = np.dstack([a, np.random.default_rng(1).integers(0, 256, a.shape[:2], dtype=np.uint8)])
    for same in (a, a.astype(np.float32) / 255, a.astype(np.float64), a.astype(np.uint16) * 257, a.astype(np.int64),
                 rgba, Image.fromarray(rgba)):
        assert (x([same]) == ref).all(), getattr(same, "dtype", same)
    for mode in ("P", "LA", "I;16"):  # PIL modes in memory as in their own files
        img = Image.fromarray(a).quantize(64) if mode == "P" else Image.fromarray(a).convert(mode)
        img.save(tmp_path / "mode.png")
        assert (x([img]) == x([str(tmp_path / "mode.png")])).all(), mode
    grey = a[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")  # a 16-bit PNG (I;16)
    grey_ref = x([str(tmp_path / "grey.png")])
    for same in (grey, grey[:, :, None], grey.astype(np.uint16) * 257, str(tmp_path / "grey16.png"),
                 np.dstack([grey, grey])):  # grey + alpha
        assert (x([same]) == grey_ref).all()
    assert (x([np.eye(16, dtype=bool)])[0, 0].numpy() == np.eye(16) * 255).all()  # 16 px: no resize


def test_crop_policy_applies_to_arrays_as_to_files(photo):
    from convclass.data.images import decode_file
    from convclass.data.preprocess import Preprocess
    from convclass.inference import HasPreprocess
    a, path = photo
    for resize, pct in (("crop", 0.875), ("squash", 1.0)):
        holder = HasPreprocess()
        holder.preprocess = Preprocess(img_size=8, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, resize=resize,
                                       crop_pct=pct)
        want = decode_file(path, 8, 3, resize, pct)
        got = holder.preprocess_images([a, Image.fromarray(a)]).permute(0, 2, 3, 1).numpy()
        assert (got == want).all(), resize
    assert not (decode_file(path, 8, 3, "crop", 0.875) == decode_file(path, 8, 3, "squash", 1.0)).all()


@pytest.mark.parametrize("bad, says", [
    (np.zeros((3, 16, 16), np.uint8), "channels-first"),
    (np.zeros((16, 16, 5), np.uint8), "(H, W, C)"),
    (np.zeros((0, 4), np.uint8), "shape (0, 4)"),
    (np.full((4, 4), -1.5, np.float32), "normalized"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.full((4, 4), 70000, np.int64), "raw pixels"),
    (np.zeros((4, 4), np.complex64), "dtype complex64"),
    ({"image": 1}, "dict"),
    ("no/such/file.png", "no/such/file.png"),
])
def test_what_cannot_be_an_image_is_one_line(model, bad, says):
    with pytest.raises(ConvclassError) as e:
        model.predict(bad)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_torch_tensors_and_bad_topk_are_refused(model):
    import torch
    with pytest.raises(ConvclassError, match="predict_proba"):
        model.predict(torch.zeros(3, 8, 8))
    with pytest.raises(ConvclassError, match="topk"):
        model.predict(np.zeros((8, 8), np.uint8), topk=0)


@pytest.mark.timeout(120)
def test_exported_runtime_predicts_the_same(model, trained_run, photo, tmp_path):
    from convclass.export import export_model, load_predictor
    a, path = photo
    onnx = load_predictor(export_model(trained_run.run_dir, "onnx", output=tmp_path / "m.onnx").path)
    images = [path, Image.fromarray(a), a, a.astype(np.float32) / 255]
    for got, want in zip(onnx.predict(images, topk=3), model.predict(images, topk=3)):
        assert [c for c, _ in got.top] == [c for c, _ in want.top] and got.source == want.source
        assert [p for _, p in got.top] == pytest.approx([p for _, p in want.top], abs=1e-4)
