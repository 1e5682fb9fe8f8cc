"""Data loading from real-world folders: broken and odd files, split layouts, CSV, EXIF orientation, channels."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convclass.data import decode_file, prepare_data
from convclass.errors import ConvclassError
from synth import (exif_rotated_jpeg, file_hashes, grey_jpeg, palette_gif, png16, rgba_png, truncated_jpeg,
                   write_class_folders, write_grey_folders)


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[Path, int, list[str]]:
    """A class-folder dataset with every kind of file a real download holds.

    Returns (root, number of valid images, names of the broken files).
    """
    root = tmp_path_factory.mktemp("messy") / "messy"
    files = write_class_folders(root, per_class=8, size=16)  # red, green, blue: 24 valid PNGs
    valid = sum(len(v) for v in files.values())
    red, green, blue = (root / c for c in ("red", "green", "blue"))
    truncated_jpeg(red / "truncated.jpg")
    (green / "empty.png").write_bytes(b"")
    (blue / "notes.txt").write_text("not an image\n")
    broken = ["truncated.jpg", "empty.png", "notes.txt"]
    png16(red / "deep16.png")
    rgba_png(green / "alpha.png", (40, 200, 40))
    palette_gif(blue / "palette.gif", (40, 40, 200))
    grey_jpeg(red / "grey.jpg")
    valid += 4
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (red / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "empty_class").mkdir()
    for ckpt_dir in (root / ".ipynb_checkpoints", green / ".ipynb_checkpoints"):
        ckpt_dir.mkdir()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(ckpt_dir / "img-checkpoint.png")
    return root, valid, broken


def _prepare(root, tmp_path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pd = prepare_data(str(root), data_root=str(tmp_path / "cache"), seed=0, **kw)
    return pd, [str(w.message) for w in caught]


def test_messy_folder_uses_every_valid_image_and_names_broken_ones_once(messy, tmp_path):
    root, n_valid, broken = messy
    pd, msgs = _prepare(root, tmp_path)
    assert pd.classes == ["blue", "green", "red"]  # not .ipynb_checkpoints, not empty_class
    assert len(pd.train) + len(pd.val) + len(pd.test) == n_valid
    used = {Path(p).name for s in (pd.train, pd.val, pd.test) for p in s.paths}
    assert {"deep16.png", "alpha.png", "palette.gif", "grey.jpg"} <= used
    assert not any(".ipynb_checkpoints" in p for s in (pd.train, pd.val, pd.test) for p in s.paths)
    skipped = [m for m in msgs if "unreadable" in m or "skipped" in m]
    assert len(skipped) == 1, msgs
    for name in broken:
        assert name in skipped[0]
    assert sorted(Path(p).name for p, _ in pd.broken) == sorted(broken)
    assert any("empty_class" in n for n in pd.notes)
    assert pd.channels == 3 and pd.train.x.dtype == torch.uint8

    # The decode cache must remember the broken files: a second run warns the same way without decoding.
    pd2, msgs2 = _prepare(root, tmp_path)
    assert sorted(pd2.broken) == sorted(pd.broken)
    assert len([m for m in msgs2 if "skipped" in m]) == 1
    assert len(pd2.train) == len(pd.train)


def test_training_on_messy_folder_via_cli(messy, tmp_path, cli):
    root, n_valid, broken = messy
    before = file_hashes(root)
    res = cli("train", "--data", root, "--model", "shallow", "--epochs", "1", "--batch-size", "8", "--device",
              "cpu", "--no-report", "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--name", "messy")
    assert res.rc == 0, res
    warning_lines = [ln for ln in res.err.splitlines() if ln.startswith("warning:")]
    assert len(warning_lines) == 1 and all(b in warning_lines[0] for b in broken), res.err
    assert "Traceback" not in res.err
    run = tmp_path / "runs" / "messy"
    assert (run / "best.pt").exists() and (run / "test_metrics.json").exists()
    from convclass.checkpoint import load_checkpoint
    ck = load_checkpoint(run)
    assert ck["classes"] == ["blue", "green", "red"]
    assert ck["data"]["n_train"] + ck["data"]["n_val"] + ck["data"]["n_test"] == n_valid
    assert file_hashes(root) == before, "training modified the source folder"


def test_decoding_odd_formats(tmp_path):
    png16(tmp_path / "deep.png")
    a = decode_file(tmp_path / "deep.png", None)
    assert a.dtype == np.uint8 and a.shape == (16, 16, 1)
    assert a.min() == 0 and a.max() == 255  # the full 16-bit range maps onto 0..255, not clipped to white
    assert 100 < np.median(a) < 155
    # A dark 16-bit image stays dark (scaled by 65535, not by its own maximum).
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(tmp_path / "dark16.png")
    assert decode_file(tmp_path / "dark16.png", None).max() <= 1
    rgba_png(tmp_path / "a.png", (200, 40, 40))
    assert decode_file(tmp_path / "a.png", 8).shape == (8, 8, 3)
    palette_gif(tmp_path / "p.gif", (40, 40, 200))
    b = decode_file(tmp_path / "p.gif", None)
    assert b.shape == (16, 16, 3) and b[..., 2].mean() > b[..., 0].mean()
    grey_jpeg(tmp_path / "g.jpg")
    assert decode_file(tmp_path / "g.jpg", None).shape == (16, 16, 1)
    assert decode_file(tmp_path / "g.jpg", None, channels=3).shape == (16, 16, 3)


def test_exif_orientation_is_applied(tmp_path):
    stored = exif_rotated_jpeg(tmp_path / "rot.jpg", orientation=6, size=32)
    with Image.open(tmp_path / "rot.jpg") as im:
        assert im.getexif().get(0x0112) == 6  # the file really carries the tag
    a = decode_file(tmp_path / "rot.jpg", 32, 3).astype(int)
    expected = np.rot90(stored, k=-1).astype(int)  # orientation 6: rotate 90 degrees clockwise to display
    assert np.abs(a - expected).mean() < 10
    # Red (left half of the stored pixels) ends up on top; without the rotation it would stay on the left.
    assert a[:12, :, 0].mean() > 200 and a[20:, :, 2].mean() > 200
    assert np.abs(a - stored.astype(int)).mean() > 60


def test_split_folders_with_case_insensitive_aliases(tmp_path):
    root = tmp_path / "splits"
    write_class_folders(root / "Training", per_class=6)
    write_class_folders(root / "VALID", per_class=2, seed=1)
    write_class_folders(root / "test_all", per_class=3, seed=2)
    pd, _ = _prepare(root, tmp_path)
    assert pd.classes == ["blue", "green", "red"]
    assert (len(pd.train), len(pd.val), len(pd.test)) == (18, 6, 9)  # nothing carved: the folders are the splits
    assert all("/VALID/" in p for p in pd.val.paths) and all("/test_all/" in p for p in pd.test.paths)


def test_train_and_test_only_carves_a_stratified_val(tmp_path):
    root = tmp_path / "tt"
    write_class_folders(root / "train", per_class=10)
    write_class_folders(root / "test", per_class=3, seed=2)
    pd, _ = _prepare(root, tmp_path, val_split=0.2)
    assert len(pd.test) == 9 and len(pd.val) == 6 and len(pd.train) == 24
    assert np.bincount(pd.val.y.numpy()).tolist() == [2, 2, 2]
    assert not set(pd.val.paths) & set(pd.train.paths)


def test_single_class_folder_root_is_split_stratified(tmp_path):
    root = tmp_path / "flat"
    write_class_folders(root, per_class=10)
    pd, _ = _prepare(root, tmp_path, test_split=0.2, val_split=0.25)
    assert np.bincount(pd.test.y.numpy()).tolist() == [2, 2, 2]
    assert np.bincount(pd.val.y.numpy()).tolist() == [2, 2, 2]
    assert np.bincount(pd.train.y.numpy()).tolist() == [6, 6, 6]
    everything = pd.train.paths + pd.val.paths + pd.test.paths
    assert len(set(everything)) == 30  # disjoint and complete
    again, _ = _prepare(root, tmp_path, test_split=0.2, val_split=0.25)
    assert again.test.paths == pd.test.paths  # the same seed gives the same split


def test_csv_of_path_label(tmp_path):
    files = write_class_folders(tmp_path / "imgs", per_class=5)
    lines = ["path,label"]
    for cls, paths in files.items():
        lines += [f"imgs/{cls}/{p.name},{cls}" for p in paths[:4]]
        lines.append(f"{paths[4]},{cls}")  # absolute paths work too
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    pd, _ = _prepare(tmp_path / "labels.csv", tmp_path)
    assert pd.classes == ["blue", "green", "red"]
    assert len(pd.train) + len(pd.val) + len(pd.test) == 15
    for s in (pd.train, pd.val, pd.test):
        for path, y in zip(s.paths, s.y.tolist()):
            assert Path(path).parent.name == pd.classes[y]


def test_class_only_in_test_is_a_clear_error(tmp_path):
    root = tmp_path / "mismatch"
    write_class_folders(root / "train", per_class=4, classes=["red", "green"])
    write_class_folders(root / "test", per_class=2, classes=["red", "green", "blue"])
    with pytest.raises(ConvclassError, match="blue"):
        prepare_data(str(root), data_root=str(tmp_path / "cache"))


@pytest.mark.parametrize("layout", ["empty", "empty_classes", "one_class", "all_broken", "header_only_csv"])
def test_empty_datasets_are_clear_errors(tmp_path, layout):
    root = tmp_path / "d"
    root.mkdir()
    target = root
    if layout == "empty_classes":
        (root / "a").mkdir()
        (root / "b").mkdir()
    elif layout == "one_class":
        write_class_folders(root, per_class=3, classes=["red"])
    elif layout == "all_broken":
        for c in ("a", "b"):
            (root / c).mkdir()
            for i in range(3):
                (root / c / f"{i}.png").write_bytes(b"")
    elif layout == "header_only_csv":
        target = root / "labels.csv"
        target.write_text("path,label\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConvclassError) as e:
            prepare_data(str(target), data_root=str(tmp_path / "cache"))
    assert "\n" not in str(e.value) and len(str(e.value)) > 20


def test_channels_follow_the_data(tmp_path):
    grey = tmp_path / "grey"
    write_grey_folders(grey)
    palette = Image.fromarray(np.full((16, 16), 90, np.uint8), "L").convert("P")  # a grey palette is grey
    palette.save(grey / "dark" / "pal.gif")
    png16(grey / "light" / "deep.png")
    pd, _ = _prepare(grey, tmp_path)
    assert pd.channels == 1 and pd.train.x.shape[1] == 1 and len(pd.mean) == 1

    mixed = tmp_path / "mixed"
    shutil.copytree(grey, mixed)
    rgba_png(mixed / "light" / "colour.png", (200, 40, 40))
    pd, _ = _prepare(mixed, tmp_path)
    assert pd.channels == 3 and pd.train.x.shape[1] == 3 and len(pd.mean) == 3
    forced, _ = _prepare(mixed, tmp_path, channels=1)
    assert forced.channels == 1 and forced.train.x.shape[1] == 1


def test_image_size_is_native_when_uniform_else_the_default(tmp_path):
    root = tmp_path / "sizes"
    write_class_folders(root, per_class=4, size=12)
    pd, _ = _prepare(root, tmp_path)
    assert pd.img_size == 12 and pd.train.x.shape[-2:] == (12, 12)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / "red" / "wide.png")
    pd, _ = _prepare(root, tmp_path, default_size=24)
    assert pd.img_size == 24 and pd.train.x.shape[-2:] == (24, 24)
