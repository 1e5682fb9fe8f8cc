"""The fast recipe (airbench net, recipe presets, TTA) and the memory-mapped decode cache: tiny and quick."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from synth import write_class_folders, write_grey_folders


def _train(data, tmp_path, **kw):
    from convclass import train
    return train(data=str(data), recipe="fast", epochs=1, device="cpu", report=False, quiet=True,
                 runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"), **kw)


def test_recipe_fills_options_and_explicit_ones_win():
    from convclass.config import TrainConfig
    from convclass.errors import ConvclassError
    from convclass.training.recipes import with_recipe
    cfg = with_recipe(TrainConfig(), {"recipe": "fast", "lr": 0.1, "model_args": {"scale": 0.5}})
    assert (cfg.model, cfg.label_smoothing, cfg.tta, cfg.recipe) == ("airbench", 0.2, "flip-translate", "fast")
    assert cfg.lr == 0.1 and cfg.model_args == {"widths": "64,256,256", "channels_last": True, "scale": 0.5,
                                                "head_std": 1.0}
    assert (cfg.optimizer, cfg.schedule, cfg.augment, cfg.batch_size, cfg.micro_batch) == (
        "muon", "linear", "alt-flip-translate", 2000, 125)
    sgd = with_recipe(TrainConfig(), {"recipe": "fast-sgd"})
    assert (sgd.optimizer, sgd.schedule, sgd.lookahead) == ("sgd", "triangle", True)
    other = with_recipe(TrainConfig(), {"recipe": "fast", "model": "cnn3"})
    assert other.model == "cnn3" and other.model_args == {}  # airbench's knobs are not passed to cnn3
    assert with_recipe(TrainConfig(), {"lr": 0.5}).model == TrainConfig().model  # no recipe: untouched
    with pytest.raises(ConvclassError, match="--recipe must be one of fast, fast-sgd"):
        with_recipe(TrainConfig(), {"recipe": "fastest"})


def test_fast_recipe_trains_rgb_folder_end_to_end(rgb_folder, tmp_path):
    from convclass.checkpoint import load_checkpoint
    from convclass.models import create_model
    res = _train(rgb_folder, tmp_path)
    assert res.config.model == "airbench" and res.config.recipe == "fast"
    assert res.test_metrics["tta"] == "flip-translate" and 0 <= res.test_metrics["accuracy"] <= 1
    # the stem was whitened from the training data, and the checkpoint carries it
    ck = load_checkpoint(res.run_dir / "best.pt")
    fresh = create_model("airbench", **ck["arch_args"])
    stem = ck["model_state"]["features.0.weight"]
    assert not torch.allclose(stem, fresh.state_dict()["features.0.weight"])
    assert torch.allclose(stem[:stem.shape[0] // 2], -stem[stem.shape[0] // 2:])  # filters and negatives


@pytest.mark.parametrize("kind", ["64px", "grey"])
def test_fast_recipe_other_small_image_sets(kind, tmp_path):
    root = tmp_path / kind
    if kind == "64px":
        write_class_folders(root, per_class=6, size=64)
    else:
        write_grey_folders(root, per_class=8, size=20)
    res = _train(root, tmp_path)
    assert res.config.model == "airbench"
    assert np.isfinite(res.history[0]["train_loss"])
    from convclass.checkpoint import load_checkpoint
    pre = load_checkpoint(res.run_dir / "best.pt")["preprocess"]
    assert (pre["img_size"], pre["channels"]) == ((64, 3) if kind == "64px" else (20, 1))


def test_whitening_filters_whiten_patches():
    from convclass.models.airnet import whitening_filters
    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 3, 12, 12, generator=g)
    x = base + 0.8 * base.roll(1, dims=3)  # correlated neighbours, like real images
    w = whitening_filters(x, eps=0.0)
    out = torch.nn.functional.conv2d(x, w[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(out.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)


def _tiny_model(k=4):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(5 * 8 * 8, k))


def test_tta_shapes_order_and_views():
    from convclass.data import normalize
    from convclass.inference import predict_logits
    from convclass.training.tta import tta_logits
    model, cpu = _tiny_model(), torch.device("cpu")
    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    mean, std = [0.5] * 3, [0.25] * 3
    plain = predict_logits(model, x, mean, std, cpu, 4)
    assert torch.equal(tta_logits(model, x, mean, std, cpu, 4, "none"), plain)
    for mode in ("flip", "flip-translate"):
        out = tta_logits(model, x, mean, std, cpu, 3, mode)
        assert out.shape == (10, 4)
        one_by_one = torch.cat([tta_logits(model, x[i:i + 1], mean, std, cpu, 1, mode) for i in range(10)])
        assert torch.allclose(out, one_by_one, atol=1e-5)  # rows stay with their images across batches
        assert not torch.allclose(out, plain, atol=1e-4)
    xf = normalize(x, torch.tensor(mean), torch.tensor(std))
    with torch.no_grad():
        manual = 0.5 * (model(xf) + model(xf.flip(3)))
    assert torch.allclose(tta_logits(model, x, mean, std, cpu, 4, "flip"), manual, atol=1e-5)


def test_validate_with_tta_off_is_plain_eval(trained_run):
    from convclass.data import prepare_data
    from convclass.inference import load_model
    from convclass.training.fit import validate
    cfg = trained_run.config
    data = prepare_data(cfg.data, data_root=cfg.data_root, seed=cfg.seed)
    lm = load_model(trained_run.run_dir, "cpu")
    m_off, p_off = validate(lm.model, data.test, data, torch.device("cpu"), 8)
    m_none, p_none = validate(lm.model, data.test, data, torch.device("cpu"), 8, tta="none")
    assert torch.equal(p_off, p_none) and m_off == m_none
    _, p_flip = validate(lm.model, data.test, data, torch.device("cpu"), 8, tta="flip")
    assert p_flip.shape == p_off.shape and torch.allclose(p_flip.sum(1), torch.ones(len(p_flip)))


def test_unknown_tta_is_a_clear_error(rgb_folder, tmp_path):
    from convclass.errors import ConvclassError
    with pytest.raises(ConvclassError, match="--tta must be one of"):
        _train(rgb_folder, tmp_path, tta="mirror")


def test_decode_cache_is_memory_mapped_reused_and_invalidated(tmp_path):
    from convclass.data.decode import decode_set
    from convclass.data.folder import scan_folder
    root = tmp_path / "imgs"
    files = write_class_folders(root, per_class=3, size=8)
    cache = tmp_path / "decoded"
    first, *_ = decode_set(scan_folder(root).train, 8, 3, cache)
    again, *_ = decode_set(scan_folder(root).train, 8, 3, cache)
    assert isinstance(again, np.memmap) and np.array_equal(first, again)  # read back from the cache file
    assert len(list(cache.glob("*.npy"))) == 1
    # change one image's pixels (new content, new mtime): the cache must not serve the old pixels
    target = files["red"][0]
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(target)
    os.utime(target, ns=(os.stat(target).st_atime_ns, os.stat(target).st_mtime_ns + 10**9))
    spec = scan_folder(root).train
    fresh, _, paths, _, where = decode_set(spec, 8, 3, cache)
    assert fresh.shape == (9, 3, 8, 8) and where.with_suffix(".npy").exists()  # (N, C, H, W), as training reads
    i = [os.path.abspath(p) for p in paths].index(os.path.abspath(target))
    assert (fresh[i] == 7).all() and not (first[i] == 7).all()
    assert len(list(cache.glob("*.npy"))) == 2


def test_parallel_decode_writes_every_image_to_its_row_and_skips_broken_ones(tmp_path, monkeypatch):
    import convclass.data.decode as dec
    from convclass.data.folder import scan_folder
    root = tmp_path / "imgs"
    write_class_folders(root, per_class=7, size=8)
    (root / "red" / "zz_truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    spec = scan_folder(root).train
    serial = dec.decode_set(spec, 8, 3)  # in memory, one process
    monkeypatch.setattr(dec, "PARALLEL_MIN", 4)  # the chunked multi-process path on a small folder
    par = dec.decode_set(spec, 8, 3, tmp_path / "cache", workers=2)
    assert [os.path.basename(p) for p, _ in par.broken] == ["zz_truncated.png"] == \
        [os.path.basename(p) for p, _ in serial.broken]
    assert par.images.shape == (21, 3, 8, 8) and np.array_equal(par.images, serial.images)
    assert par.paths == serial.paths and np.array_equal(par.labels, serial.labels)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [par.cache.name + ".npy", par.cache.name + ".json"])  # no temporary files left
    again = dec.decode_set(spec, 8, 3, tmp_path / "cache")
    assert isinstance(again.images, np.memmap) and np.array_equal(again.images, serial.images)


def test_decode_cache_that_would_not_fit_on_disk_is_a_clear_error(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import convclass.data.decode as dec
    from convclass.data.folder import scan_folder
    from convclass.errors import ConvclassError
    write_class_folders(tmp_path / "imgs", per_class=3, size=8)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(ConvclassError, match="needs .* GB .*--data-root"):
        dec.decode_set(scan_folder(tmp_path / "imgs").train, 8, 3, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npy"))
