"""Data inspection: counts, broken files, exact and near-duplicate leakage between splits, perceptual hashes."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convclass.inspection.hashing import hamming, pairs_within, phash


def _scene(seed: int, size: int = 48) -> Image.Image:
    """A smooth random colour field with two rectangles: structured like a photo, unlike any other seed."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    a = np.asarray(base).copy()
    for _ in range(2):
        y, x = rng.integers(0, size - 12, 2)
        h, w = rng.integers(6, 12, 2)
        a[y:y + h, x:x + w] = rng.integers(0, 256, 3)
    return Image.fromarray(a)


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    b = io.BytesIO()
    img.save(b, "JPEG", quality=quality)
    return b.getvalue()


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> tuple[Path, dict]:
    """train/ and test/ with 3 classes; test/ holds 2 byte-identical copies, 2 JPEG re-encodes at another
    quality and 2 copies resized by one pixel of training images, next to 6 unrelated images, and 1 broken file."""
    root = tmp_path_factory.mktemp("leaky") / "leaky"
    classes = ["a", "b", "c"]
    train = {}
    for i in range(24):
        c = classes[i % 3]
        p = root / "train" / c / f"t{i:02d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_jpeg_bytes(_scene(i), 90))
        train[i] = p
    test = root / "test"
    for c in classes:
        (test / c).mkdir(parents=True)
    expect = {"exact": set(), "near": set()}
    for i in (0, 1):  # byte-identical copies
        dst = test / train[i].parent.name / f"copy{i}.jpg"
        shutil.copyfile(train[i], dst)
        expect["exact"].add((str(train[i]), str(dst)))
    for i in (2, 3):  # the same picture saved again at JPEG quality 60 instead of 90
        dst = test / train[i].parent.name / f"requal{i}.jpg"
        dst.write_bytes(_jpeg_bytes(Image.open(train[i]), 60))
        expect["near"].add((str(train[i]), str(dst)))
    for i in (4, 5):  # resized by one pixel, saved as PNG
        dst = test / train[i].parent.name / f"resized{i}.png"
        im = Image.open(train[i])
        im.resize((im.width + 1, im.height - 1), Image.BILINEAR).save(dst)
        expect["near"].add((str(train[i]), str(dst)))
    for j in range(6):  # unrelated test images
        (test / classes[j % 3] / f"new{j}.jpg").write_bytes(_jpeg_bytes(_scene(1000 + j), 90))
    (test / "a" / "broken.jpg").write_bytes(_jpeg_bytes(_scene(2000), 90)[:200])
    return root, expect


def test_inspect_reports_exact_and_reencoded_leaks(leaky, tmp_path, cli):
    root, expect = leaky
    out = tmp_path / "insp"
    res = cli("inspect", root, "--output", out)
    assert res.rc == 0, res
    r = json.loads((out / "inspect.json").read_text())
    # train/ is split into train and a carved val split, so a leaked copy pairs test with either
    leak = lambda p: "test" in (p["a_split"], p["b_split"]) and p["a_split"] != p["b_split"]  # noqa: E731
    exact = {(p["a"], p["b"]) for p in r["exact_duplicates"] if leak(p)}
    near = {(p["a"], p["b"]) for p in r["near_duplicates"] if leak(p)}
    norm = lambda pairs: {tuple(sorted(p)) for p in pairs}  # noqa: E731
    assert norm(exact) == norm(expect["exact"])
    assert norm(near) == norm(expect["near"]), r["near_duplicates"]
    assert len(r["exact_duplicates"]) == 2 and len(r["near_duplicates"]) == 4  # nothing unrelated reported
    assert "LEAKAGE" in res.out and "copy0.jpg" in res.out and "requal2.jpg" in res.out and "resized4.png" in res.out
    assert [b["path"] for b in r["broken"]] == [str(root / "test" / "a" / "broken.jpg")]
    assert r["n"]["test"] == 12 and sum(r["n"].values()) == 36
    for name in ("class_counts.png", "sizes.png", "samples.png", "duplicates.csv"):
        assert (out / name).stat().st_size > 0


def test_inspect_counts_and_imbalance(tmp_path, cli):
    root = tmp_path / "imb"
    for c, n in (("few", 3), ("many", 12)):
        (root / c).mkdir(parents=True)
        for i in range(n):
            _scene(hash((c, i)) % 10_000, 24).save(root / c / f"{i}.png")
    res = cli("inspect", root, "--output", tmp_path / "o", "--test-split", "0.34")
    assert res.rc == 0, res
    r = json.loads((tmp_path / "o" / "inspect.json").read_text())
    total = [sum(r["counts"][s][i] for s in r["counts"]) for i in range(2)]
    assert total == [3, 12]
    tr = r["counts"]["train"]
    assert r["imbalance_ratio"] == pytest.approx(max(tr) / min(tr))
    assert "imbalance ratio" in res.out and "24x24 (15)" in res.out


def test_inspect_missing_data_is_one_line_error(tmp_path, cli):
    from conftest import assert_one_line_error
    assert_one_line_error(cli("inspect", tmp_path / "nope"), "neither a folder")


def test_phash_survives_reencoding_but_separates_images():
    img = _scene(7, 64)
    again = Image.open(io.BytesIO(_jpeg_bytes(img, 50)))
    assert hamming(phash(img), phash(again)) <= 4
    others = [phash(_scene(s, 64)) for s in range(100, 130)]
    assert min(int(hamming(phash(img), o)) for o in others) > 10


def test_pairs_within_matches_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, 60).astype(np.uint64)
    h = np.concatenate([h, h[:60] ^ flips, h[:30] ^ flips[:30] ^ (flips[30:] << np.uint64(1))])
    i, j, d = pairs_within(h, 3)
    full = hamming(h[:, None], h[None, :])
    a, b = np.nonzero(np.triu(full <= 3, 1))
    assert set(zip(i.tolist(), j.tolist())) == set(zip(a.tolist(), b.tolist()))
    assert len(a) >= 60 and (d <= 3).all()
