"""Hostile WebDataset shards and patterns (data/shards.py): nothing is extracted or run, every answer is one
`error:` line (or a skipped member with a note) in bounded time."""
from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from PIL import Image

from convclass.data.shards import scan_shards

TRAIN = ("--model", "shallow", "--epochs", "1", "--no-report", "--quiet")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _good(folder: Path, n: int = 4) -> dict[str, bytes]:
    return {f"{k:04d}.{ext}": (_png() if ext == "png" else str(k % 2).encode()) for k in range(n)
            for ext in ("png", "cls")}


@pytest.mark.timeout(60)
def test_patterns_that_would_run_or_fetch_something_are_refused(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    for pattern in (f"pipe:touch {marker}; cat x-{{0..1}}.tar", "http://example.invalid/s-{0..1}.tar"):
        assert_one_line_error(cli("train", "--data", pattern, *TRAIN, "--runs-dir", tmp_path), "not URLs or pipes")
    assert not marker.exists()
    t0 = time.monotonic()
    assert_one_line_error(cli("train", "--data", str(tmp_path / "s-{0..999999999}.tar"), *TRAIN), "more than")
    assert time.monotonic() - t0 < 10


@pytest.mark.timeout(60)
def test_an_index_naming_files_outside_its_folder_is_refused(tmp_path, cli):
    out = tmp_path / "shards"
    out.mkdir()
    _tar(out / "train-0.tar", _good(out))
    _tar(tmp_path / "secret.tar", _good(out))
    (out / "shards.json").write_text(json.dumps({"classes": ["a", "b"], "splits": {"test": ["../secret.tar"]}}))
    res = cli("train", "--data", str(out / "train-{0..0}.tar"), *TRAIN, "--runs-dir", tmp_path)
    assert_one_line_error(res, "shards.json", "convclass shard")


@pytest.mark.timeout(60)
def test_traversing_members_are_skipped_and_never_written(tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    _tar(out / "train-0.tar", {**_good(out), "../escape.png": _png(), "../escape.cls": b"1", "/abs.png": _png(),
                               "/abs.cls": b"0"})
    before = sorted(p for p in tmp_path.rglob("*"))
    spec = scan_shards(str(out / "train-{0..0}.tar"))
    assert len(spec.train) == 4 and all("escape" not in p and "abs" not in p for p in spec.train.paths)
    assert any("outside the archive" in n for n in spec.notes)
    assert sorted(p for p in tmp_path.rglob("*")) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("label, needle", [(b"cat", "class index"), (b"-3", "class index"),
                                           (b"1" * 10_000, "class index"), (b'{"label": true}', "class index")])
def test_bad_labels_are_one_line_errors(tmp_path, cli, label, needle):
    out = tmp_path / "shards"
    out.mkdir()
    members = _good(out)
    ext = "json" if label.startswith(b"{") else "cls"
    members.pop("0002.cls")
    members[f"0002.{ext}"] = label
    _tar(out / "train-0.tar", members)
    res = cli("train", "--data", str(out / "train-{0..0}.tar"), *TRAIN, "--runs-dir", tmp_path)
    assert_one_line_error(res, needle, "0002")
