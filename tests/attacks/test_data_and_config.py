"""Hostile data folders and config files: special files, symlink loops, decompression bombs, YAML bombs, tags.

Each hostile input is built here at test time. A command that meets one must finish in bounded time and memory,
skip and name what it cannot use (data) or answer with one `error:` line (config), and run no code."""
from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from conftest import REPO, assert_one_line_error
from synth import write_class_folders

MEMORY_LIMIT = 2 * 2**30  # heap for a child process: far above a real run here, far below an unbounded read


def _run_bounded(*args, cwd: Path, timeout: float = 50) -> subprocess.CompletedProcess:
    """`python -m convclass ARGS` with its heap capped (RLIMIT_DATA): an unbounded read or expansion ends in
    MemoryError, not in the kernel killing whatever else runs on the machine."""
    def cap():
        resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "convclass", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, preexec_fn=cap)


def _png_bomb(path: Path, side: int = 100_000) -> None:
    """A 200-byte PNG whose header claims side x side pixels (10^10: 30 GB decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    """3 classes x 8 PNGs plus: a FIFO, a symlink to /dev/zero, a decompression bomb, a symlink to another
    class's image, a symlink loop of two files, a sub-folder linking to its parent, and `loop -> root`."""
    root = tmp_path_factory.mktemp("hostile") / "ds"
    write_class_folders(root, per_class=8, size=16)
    os.mkfifo(root / "red" / "x.png")
    os.symlink("/dev/zero", root / "green" / "zero.png")
    _png_bomb(root / "blue" / "bomb.png")
    os.symlink(root / "blue" / "blue_000.png", root / "red" / "copy.png")
    os.symlink("b.png", root / "green" / "a.png")
    os.symlink("a.png", root / "green" / "b.png")
    os.symlink("..", root / "blue" / "up")
    os.symlink(root, root / "loop")
    return root


SKIPPED = ("x.png", "zero.png", "bomb.png")


@pytest.mark.timeout(60)
def test_inspect_skips_special_files_and_symlinks_into_the_dataset(hostile_folder, tmp_path):
    """inspect read a FIFO forever (hang) and /dev/zero without bound (23.8 GB), and counted `loop` as a class."""
    res = _run_bounded("inspect", hostile_folder, "--output", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert out.startswith("ds: 3 classes"), out
    assert "(not a regular file (a FIFO))" in out and "(not a regular file (a character device))" in out, out
    assert "too many pixels (10,000,000,000 pixels" in out, out
    assert "skipped " + str(hostile_folder / "loop") in out, out
    assert "red/copy.png" in out and "symlinked folder" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing else written


@pytest.mark.timeout(60)
def test_train_skips_special_files_and_names_them(hostile_folder, tmp_path, cli):
    """train hung on the FIFO (opened to peek at its size) before the first epoch."""
    res = cli("train", "--data", hostile_folder, "--model", "shallow", "--epochs", "1", "--batch-size", "8",
              "--device", "cpu", "--threads", "1", "--no-report", "--runs-dir", tmp_path / "runs",
              "--data-root", tmp_path / "cache", "--name", "hostile")
    assert res.rc == 0, res
    warning = next(ln for ln in res.err.splitlines() if ln.startswith("warning: skipped"))
    for name in SKIPPED:
        assert name in warning, warning
    assert "ds: 3 classes" in res.out, res.out
    assert f"note: skipped {hostile_folder / 'loop'}" in res.out, res.out


@pytest.mark.timeout(30)
def test_scan_never_counts_an_image_twice(tmp_path):
    """Symlinked splits and classes that point back into the dataset are skipped with a note."""
    from convclass.data.folder import scan_folder
    root = tmp_path / "split"
    write_class_folders(root / "train", per_class=3, size=8)
    os.symlink(root / "train", root / "val")           # val would be a copy of train: leakage
    os.symlink(root / "train" / "red", root / "train" / "crimson")
    os.symlink(root, root / "train" / "all")           # a class holding the whole dataset, train included
    spec = scan_folder(root)
    assert spec.classes == ["blue", "green", "red"] and len(spec.train) == 9 and spec.val is None
    assert sum("skipped" in n for n in spec.notes) == 3, spec.notes


@pytest.mark.timeout(30)
def test_files_over_the_size_limit_are_skipped(tmp_path, monkeypatch):
    from convclass.data.decode import decode_set
    from convclass.data.folder import scan_folder
    root = tmp_path / "ds"
    write_class_folders(root, per_class=2, size=8)
    (root / "red" / "big.png").write_bytes((root / "red" / "red_000.png").read_bytes() + b"\0" * 40_000)
    monkeypatch.setenv("CONVCLASS_MAX_FILE_MB", "0.03")
    d = decode_set(scan_folder(root).train, 8, 3)
    assert [(Path(p).name, r) for p, r in d.broken] == [
        ("big.png", "larger than the 0.03 MB limit per file ($CONVCLASS_MAX_FILE_MB raises it)")]
    assert len(d.images) == 6


@pytest.mark.timeout(30)
def test_list_files_that_are_fifos_are_refused(tmp_path):
    """Tiny-ImageNet's words.txt as a FIFO hung the scan."""
    from convclass.data.folder import scan_folder
    from convclass.errors import ConvclassError
    root = tmp_path / "tiny"
    write_class_folders(root / "train", per_class=2, size=8, classes=["n01", "n02"])
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("n01\nn02\n")
    (root / "val" / "val_annotations.txt").write_text("")
    os.mkfifo(root / "words.txt")
    with pytest.raises(ConvclassError, match=r"words.txt: not a regular file \(a FIFO\)"):
        scan_folder(root)


# --- config files -------------------------------------------------------------------------------------------

def _alias_bomb(levels: int = 9, width: int = 10) -> str:
    """`milestones: [&a0 [1,...], &a1 [*a0,...], ...]`: under 1 KB, width^levels items once expanded."""
    nodes = ["&a0 [" + ",".join(["1"] * width) + "]"]
    nodes += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "milestones: [" + ", ".join(nodes) + "]\n"


@pytest.mark.timeout(60)
def test_yaml_alias_bomb_is_refused_fast(tmp_path):
    """1 KB of nested aliases ran `train --config` for minutes at 3 GB."""
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(_alias_bomb())
    assert cfg.stat().st_size < 1200
    t = time.perf_counter()
    res = _run_bounded("train", "--config", cfg, "--runs-dir", tmp_path / "runs", cwd=tmp_path, timeout=45)
    assert time.perf_counter() - t < 30  # a fresh interpreter importing torch on a busy machine; the load is ms
    assert_one_line_error(res, "bomb.yaml line 1", "anchors and aliases")
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(30)
def test_yaml_loader_rejects_bomb_in_bounded_time():
    """The same bomb at the loader: an error at the first anchor, long before any expansion."""
    import tracemalloc

    from convclass.config import _PlainLoader
    import yaml
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(yaml.YAMLError, match="anchors and aliases"):
        yaml.load(_alias_bomb(levels=12), Loader=_PlainLoader)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t < 2 and peak < 20 * 2**20


# Each file also names a data folder that does not exist: code that let the bad value through fails there at
# once, instead of training (or allocating 20,000-pixel images) in the test process.
NO_DATA = "data: /nonexistent/convclass-attack\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text, needles", [
    ("epochs: !!python/object/apply:os.system ['touch {marker}']\n", ["line 1", "python/object/apply"]),
    ("model_args: !!python/name:os.system\n", ["line 1", "python/name"]),
    ('epochs: "abc"\n', ["epochs must be a whole number from 1 to 100000", "'abc'"]),
    ("epochs: 1e12\n", ["epochs must be a whole number from 1 to 100000"]),
    ("epochs: 1000000000000\n", ["epochs must be at most 100000"]),
    ("lr: [1]\n", ["lr must be a finite number"]),
    ("lr: .nan\n", ["lr must be a finite number"]),
    ("milestones: [3, x]\n", ["milestones must be a list", "each a whole number", "[3, 'x']"]),
    ("img_size: 20000\n", ["img_size must be at most 1024"]),
    ("augment: true\n", ["augment must be one of none, flip-crop", "not True"]),
    ("model_args: {width: [1, 2]}\n", ["model_args must be a mapping"]),
    ("epoch: 3\n", ["unknown option(s) epoch", "did you mean epochs"]),
    ("epochs: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
    ("# " + "x" * (2**20 + 10) + "\n", ["larger than the 1 MB limit"]),
])
def test_bad_config_values_get_one_line_errors(tmp_path, cli, text, needles):
    marker = tmp_path / "PWNED"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.replace("{marker}", str(marker)) + NO_DATA)
    res = cli("train", "--config", cfg, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(res, "c.yaml", *needles)
    assert not marker.exists() and not (tmp_path / "runs").exists()


@pytest.mark.timeout(30)
def test_config_fifo_is_refused(tmp_path, cli):
    os.mkfifo(tmp_path / "c.yaml")
    assert_one_line_error(cli("train", "--config", tmp_path / "c.yaml"), "not a regular file (a FIFO)")


@pytest.mark.timeout(30)
def test_good_config_values_still_load(tmp_path):
    """YAML 1.1 reads 1e-3 as text: a float option takes it as the number it means; `lr: auto` stays."""
    from convclass.config import load_config
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 1e-3\nmilestones: [3, 6]\nmodel_args: {width: 2, act: relu}\nimg_size: null\n")
    c = load_config(cfg)
    assert (c.lr, c.milestones, c.model_args, c.img_size) == (0.001, [3, 6], {"width": 2, "act": "relu"}, None)
    cfg.write_text("lr: auto\n")
    assert load_config(cfg).lr == "auto"


@pytest.mark.timeout(30)
def test_resume_and_compare_refuse_a_bombed_run_config(tmp_path, cli):
    """A run folder's config.yaml is read by --resume, compare and report: the same loader guards each."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(_alias_bomb(levels=5) + NO_DATA)  # small: old code expanded it in-process
    (run / "metrics.csv").write_text("epoch,val_acc\n1,0.5\n")
    assert_one_line_error(cli("train", "--resume", run), "anchors and aliases")
    assert_one_line_error(cli("compare", run, run), "anchors and aliases")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.csv"]
