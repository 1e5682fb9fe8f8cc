"""--data photos.zip / .tar / .tar.gz: read in place with a folder's layout rules; hostile members never followed."""
from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from convclass.data import archive, decode, find_data, prepare_data
from convclass.errors import ConvclassError
from convclass.evaluation.evaluate import score_checkpoint
from convclass.reporting import load_predictions
from convclass.safeio import Refused
from synth import write_class_folders

pytestmark = pytest.mark.timeout(120)
TRAIN = ("--model", "shallow", "--epochs", "1", "--batch-size", "16", "--lr", "0.01", "--device", "cpu",
         "--no-report", "--quiet", "--seed", "3")


def _zip(path: Path, root: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(root.rglob("*"), reverse=True):  # stored out of name order: the listing must sort
            if f.is_file():
                z.write(f, prefix + f.relative_to(root).as_posix())
    return path


def _tar(path: Path, root: Path, prefix: str = "") -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as t:
        for f in sorted(root.rglob("*"), reverse=True):
            if f.is_file():
                t.add(f, prefix + f.relative_to(root).as_posix())
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(folder of train/ and test/ class folders, a zip of it inside one top folder, a .tar.gz of it)."""
    base = tmp_path_factory.mktemp("archives")
    root = base / "photos"
    write_class_folders(root / "train", per_class=8, size=16)
    write_class_folders(root / "test", per_class=3, size=16, seed=1)
    return root, _zip(base / "photos.zip", root, "photos-v2/"), _tar(base / "photos.tar.gz", root)


def test_a_zip_and_a_tar_gz_give_the_folders_images_splits_and_classes(photos, tmp_path):
    root, zipped, tarred = photos
    ref = prepare_data(str(root), data_root=str(tmp_path / "c"), verbose=False)
    for arc in (zipped, tarred):
        pd = prepare_data(str(arc), data_root=str(tmp_path / "c"), verbose=False)
        assert pd.classes == ref.classes == ["blue", "green", "red"]
        for split in ("train", "val", "test"):
            a, b = getattr(pd, split), getattr(ref, split)
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y), (arc, split)
            members = [p.split("::")[1].removeprefix("photos-v2/") for p in a.paths]
            assert members == [Path(p).relative_to(root).as_posix() for p in b.paths]
        assert pd.name == "photos"


def test_train_on_a_zip_predicts_as_the_folder_and_evaluate_reads_it_again(photos, tmp_path, cli):
    root, zipped, _ = photos
    runs = []
    for name, data in (("folder", root), ("zip", zipped)):
        res = cli("train", "--data", data, *TRAIN, "--runs-dir", tmp_path / "runs", "--data-root",
                  tmp_path / "cache", "--name", name)
        assert res.rc == 0, res
        runs.append(tmp_path / "runs" / name)
    folder, inzip = (load_predictions(r) for r in runs)
    assert np.allclose(folder["probs"], inzip["probs"], atol=1e-6)
    assert all("photos.zip::photos-v2/test/" in p for p in inzip["paths"])
    again = score_checkpoint(runs[1], device="cpu")  # evaluate's scoring, without its report
    assert np.allclose(again.probs, inzip["probs"], atol=1e-3)


def test_decode_workers_open_the_archive_themselves(photos, tmp_path, monkeypatch):
    """Forked workers read members through their own handles (a shared file offset would mix members up)."""
    _, zipped, tarred = photos
    monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
    for arc in (zipped, tarred):
        spec = find_data(str(arc))
        serial = decode.decode_set(spec.train, 16, 3, workers=1)  # in this process, which now holds a handle
        parallel = decode.decode_set(spec.train, 16, 3, workers=2)
        assert np.array_equal(serial.images, parallel.images) and not parallel.broken


def test_plain_tar_with_class_folders_at_the_top(tmp_path):
    root = tmp_path / "flat"
    write_class_folders(root, per_class=4, size=8)
    spec = find_data(str(_tar(tmp_path / "flat.tar", root)))
    assert spec.classes == ["blue", "green", "red"] and len(spec.train) == 12 and spec.test is None


def _png() -> bytes:
    buf = io.BytesIO()
    from PIL import Image
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_hostile_tar_members_are_skipped_with_a_note_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png, path = _png(), tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        def add(name, data=b"", **kw):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in kw.items():
                setattr(info, k, v)
            t.addfile(info, io.BytesIO(data))
        for c in ("cat", "dog"):
            for i in range(3):
                add(f"{c}/{i}.png", png)
        add("../escaped.png", png)
        add("/abs/root.png", png)
        add("cat/link.png", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("cat/hard.png", type=tarfile.LNKTYPE, linkname="cat/0.png")
        add("dog/tty.png", type=tarfile.CHRTYPE, devmajor=5, devminor=0)
        add("dog/fifo.png", type=tarfile.FIFOTYPE)
        add("dog/inner.zip", b"PK\x05\x06" + b"\0" * 18)
        add("cat/\x1b]0;pwned\x07.png", png)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    spec = find_data(str(path))
    names = sorted(p.split("::")[1] for p in spec.train.paths)
    assert names == [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(3)]
    notes = " | ".join(spec.notes)
    assert "skipped 4 member(s) that are links or special files" in notes, notes
    assert "skipped 3 member(s) with names outside the archive" in notes and "'../escaped.png'" in notes, notes
    assert "archives themselves" in notes and "\x1b" not in notes, notes
    pd = prepare_data(str(path), data_root=str(tmp_path / "cache"), verbose=False)
    assert len(pd.train) + len(pd.val) + len(pd.test) == 6
    assert sorted(p.name for p in tmp_path.rglob("*") if "cache" not in p.parts) == before


def _zip_bytes(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in links:  # what `zip --symlinks` stores: the target as the data, S_IFLNK in the Unix mode
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_bombs_are_skipped_by_declared_size_and_read_bounded(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVCLASS_MAX_FILE_MB", raising=False)
    png = _png()
    good = {f"{c}/{i}.png": png for c in ("cat", "dog") for i in range(3)}
    # A member declaring 4 GB uncompressed (its central-directory size field patched): skipped at listing.
    raw = bytearray(_zip_bytes({**good, "cat/huge.png": png}, links=("dog/link.png",)))
    at = raw.rfind(b"PK\x01\x02")  # the last central-directory entry: cat/huge.png
    raw[at + 24:at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    (tmp_path / "claims.zip").write_bytes(bytes(raw))
    spec = find_data(str(tmp_path / "claims.zip"))
    notes = " ".join(spec.notes)
    assert len(spec.train) == 6 and "skipped 1 member(s) larger than the 256 MB limit" in notes, notes
    assert "skipped 1 member(s) that are links or special files (never followed), e.g. 'dog/link.png'" in notes
    # A real 2 MB of zeros (a few KB zipped) under a 0.1 MB cap: skipped, and never inflated past the cap.
    (tmp_path / "bomb.zip").write_bytes(_zip_bytes({**good, "dog/bomb.png": bytes(2 * 2**20)}))
    monkeypatch.setenv("CONVCLASS_MAX_FILE_MB", "0.1")
    spec = find_data(str(tmp_path / "bomb.zip"))
    assert len(spec.train) == 6 and "larger than the 0.1 MB limit" in " ".join(spec.notes)
    zf = archive._zip(str(tmp_path / "bomb.zip"))
    with pytest.raises(Refused, match="0.1 MB"):
        archive._read_zip(zf, archive.Member(100, "dog/bomb.png"))  # a lie about its size changes nothing


def test_too_many_entries_or_a_huge_tar_header_is_refused_in_one_line(tmp_path, monkeypatch, cli):
    (tmp_path / "many.zip").write_bytes(_zip_bytes({f"c{i % 2}/{i}.png": b"x" for i in range(20)}))
    monkeypatch.setattr(archive, "MAX_MEMBERS", 10)
    with pytest.raises(ConvclassError, match="more than 10 entries"):
        find_data(str(tmp_path / "many.zip"))
    # a GNU long name of 2 MB: tarfile would read it whole into memory (gzip makes it 2 KB on disk)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        t.addfile(tarfile.TarInfo("a" * 2**21))
    (tmp_path / "longname.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    assert_one_line_error(cli("inspect", tmp_path / "longname.tar.gz"), "not a readable tar archive",
                          "metadata header")
    (tmp_path / "fake.zip").write_bytes(b"this is no zip file")
    assert_one_line_error(cli("train", "--data", tmp_path / "fake.zip", "--device", "cpu"),
                          "not a readable zip archive")
