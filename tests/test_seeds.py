"""Issue 20's seed configs (examples/seeds/), the Tiny-ImageNet stand-in builder and the runner bench/classics.py.

Each seed must load as a training config, say its published figure and command, and keep the published recipe;
the builder must make the 50-class folder from symlinks only; the runner must run each seed as its row says.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convclass.config import load_config
from convclass.data.folder import scan_folder
from convclass.training.recipes import with_recipe

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "examples" / "seeds").glob("*.yaml"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


classics = _load(REPO / "bench" / "classics.py")
tiny50 = _load(REPO / "examples" / "seeds" / "make_tiny50.py")
flowers = _load(REPO / "examples" / "seeds" / "make_flowers102.py")

# What the issue publishes for each experiment, as the seed must keep it (options the issue does not give are
# the seed's own choice, stated in its header).
PUBLISHED = {
    "mnist-shallow": dict(model="shallow", optimizer="adam", lr=1e-3, epochs=10),
    "cifar10-cnn3-keras": dict(model="cnn3", augment="shift-rotate", optimizer="adam", lr=1e-3,
                               schedule="multistep", milestones=[30, 60, 90], gamma=0.1, batch_size=32, epochs=100),
    "cifar10-cnn6-keras": dict(model="cnn6"),
    "cifar100-deeper": dict(schedule="cosine", warmup_epochs=5),
    "tinyimagenet50-cnn5": dict(model="cnn5", img_size=64, optimizer="adam", lr=1e-4),
    "flowers102-resnet18": dict(model="resnet18", pretrained=True, img_size=224, augment="color", optimizer="adam",
                                lr=1e-3, schedule="step", step_size=7, gamma=0.1),
    "tinyimagenet-finetune-lite0": dict(pretrained=True, fine_tune=[10, 10]),
}
FOLDS = {"mnist-shallow": 5, "cifar10-cnn6-keras": 5}  # published as stratified 5-fold


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_configs_are_valid_and_say_how_to_run_them(path):
    """Each seed loads as a training config, its header gives the published figure and the command that runs
    it, it keeps the published recipe, and the runner has a row for it with the published protocol."""
    cfg = load_config(path)
    text = path.read_text()
    assert "published" in text and f"--config examples/seeds/{path.name}" in text
    assert {k: getattr(cfg, k) for k in PUBLISHED[path.stem]} == PUBLISHED[path.stem]
    rows = [e for e in classics.EXPERIMENTS.values() if e.seed == path.stem]
    assert rows and all(e.folds == FOLDS.get(path.stem, 0) for e in rows)


def test_every_runner_row_has_its_seed():
    assert {e.seed for e in classics.EXPERIMENTS.values()} == {p.stem for p in SEEDS}


@pytest.mark.parametrize("name", ["flowers102-resnet18", "tinyimagenet-finetune-lite0"])
def test_pretrained_seeds_keep_the_published_recipe_not_the_finetune_preset(name):
    """--pretrained picks the finetune preset for every option a config leaves unset (AdamW's weight decay,
    label smoothing, micro-batches, a head probe); `recipe: none` keeps the published plain recipe."""
    cfg = with_recipe(load_config(REPO / "examples" / "seeds" / f"{name}.yaml"), {})
    assert cfg.recipe == "none" and cfg.optimizer == "adam"
    assert (cfg.weight_decay, cfg.label_smoothing, cfg.micro_batch, cfg.head_probe) == (0.0, 0.0, None, False)


def test_the_compared_optimizers_change_only_the_optimizer():
    """Adagrad and RMSprop run at Adam's rate with PyTorch's defaults: RMSprop without convclass's 0.9 momentum."""
    rows = {n: e for n, e in classics.EXPERIMENTS.items() if e.seed == "tinyimagenet50-cnn5"}
    assert {e.flags for e in rows.values()} == {(), ("--optimizer", "adagrad"),
                                                ("--optimizer", "rmsprop", "--momentum", "0")}


# --- the Tiny-ImageNet stand-in ----------------------------------------------------------------------------------

def fake_tiny_imagenet(root: Path, classes: int = 6, train: int = 12, val: int = 3) -> list[str]:
    """Tiny-ImageNet's layout with 8x8 JPEGs, plus one of the classes and a val image the GitHub copy adds."""
    wnids = [f"n{i:08d}" for i in range(classes)] + ["n02480855"]
    img = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    lines, k = [], 0
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        for i in range(train):
            img.save(root / "train" / w / "images" / f"{w}_{i}.JPEG")
        for _ in range(val):
            lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t8\t8")
            k += 1
    lines.append(f"val_10000.JPEG\t{wnids[0]}\t0\t0\t8\t8")  # an extra val image of an official class
    (root / "val" / "images").mkdir(parents=True)
    for line in lines:
        img.save(root / "val" / "images" / line.split("\t")[0])
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tthing {w[-2:]}, other\n" for w in wnids))
    return wnids


def test_tiny50_is_a_symlinked_class_folder_set_with_two_small_classes(tmp_path):
    src, out = tmp_path / "tiny-imagenet-200", tmp_path / "tiny50"
    fake_tiny_imagenet(src)
    assert tiny50.main([str(src), str(out), "--classes", "4", "--cut", "5,2"]) == 0
    m = json.loads((out / "tiny50.json").read_text())
    assert len(m["classes"]) == 4 and "n02480855" not in m["classes"]
    assert sorted(c["train"] for c in m["counts"].values()) == [2, 5, 12, 12]
    assert all(c["test"] == 3 for c in m["counts"].values())  # val_10000 is not in the official set
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "tiny50.json"]
    assert files and all(p.is_symlink() and Path(os.path.realpath(p)).is_relative_to(src) for p in files)
    spec = scan_folder(out)  # convclass reads it as train/ and test/ class folders
    assert len(spec.classes) == 4 and len(spec.train) == 31 and len(spec.test) == 12
    again = tmp_path / "again"
    assert tiny50.main([str(src), str(again), "--classes", "4", "--cut", "5,2"]) == 0
    assert json.loads((again / "tiny50.json").read_text())["classes"] == m["classes"]  # seeded


def test_tiny200_takes_every_official_class_uncut(tmp_path):
    src = tmp_path / "src"
    wnids = fake_tiny_imagenet(src, classes=3)
    assert tiny50.main([str(src), str(tmp_path / "all"), "--classes", "3", "--cut", ""]) == 0
    m = json.loads((tmp_path / "all" / "tiny50.json").read_text())
    assert m["classes"] == wnids[:3] and {c["train"] for c in m["counts"].values()} == {12}


@pytest.mark.parametrize("case", ["not tiny-imagenet", "inside the repository", "not empty", "too many classes",
                                  "bad cut"])
def test_tiny50_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, case):
    src, out = tmp_path / "src", tmp_path / "out"
    fake_tiny_imagenet(src, classes=3)
    argv = [str(src), str(out), "--classes", "3", "--cut", "1"]
    if case == "not tiny-imagenet":
        argv[0] = str(src / "train")
    elif case == "inside the repository":
        argv[1] = str(REPO / "runs" / "tiny50-test")
    elif case == "not empty":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    elif case == "too many classes":
        argv[3] = "4"
    else:
        argv[5] = "1,x"
    assert tiny50.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (REPO / "runs" / "tiny50-test").exists()
    assert sorted(p.name for p in out.rglob("*")) == (["mine.txt"] if case == "not empty" else [])


def fake_flowers(root: Path, n: int = 12, absent: int = 5) -> tuple[Path, Path, Path]:
    """A flat image_NNNNN.jpg folder (one id absent), imagelabels.mat (3 categories) and setid.mat."""
    from scipy.io import savemat
    images = root / "jpg"
    images.mkdir(parents=True)
    for i in range(1, n + 1):
        if i != absent:
            Image.new("RGB", (8, 8), (20 * i, 0, 0)).save(images / f"image_{i:05d}.jpg")
    savemat(root / "imagelabels.mat", {"labels": np.array([[1 + i % 3 for i in range(n)]], dtype=np.uint8)})
    savemat(root / "setid.mat", {"trnid": np.array([[1, 2, 3, 4, 5, 6]]), "valid": np.array([[7, 8, 9]]),
                                 "tstid": np.array([[10, 11, 12]])})
    return images, root / "imagelabels.mat", root / "setid.mat"


def _md5(path: Path) -> str:
    import hashlib
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_flowers102_links_the_official_split_in_class_folders(tmp_path, monkeypatch):
    images, labels, setid = fake_flowers(tmp_path / "src")
    monkeypatch.setattr(flowers, "OFFICIAL_MD5", {"imagelabels.mat": _md5(labels), "setid.mat": _md5(setid)})
    names = tmp_path / "names.json"
    names.write_text(json.dumps({str(k): f"flower {k}" for k in range(1, 103)}))
    out = tmp_path / "flowers"
    assert flowers.main([str(images), str(labels), str(setid), str(out), "--names", str(names)]) == 0
    info = json.loads((out / "flowers102.json").read_text())
    assert info["counts"] == {"train": 5, "val": 3, "test": 3} and info["missing"] == [5]
    # image i has category 1 + (i - 1) % 3 (labels are 1-based ids into the list)
    assert sorted(p.name for p in (out / "train" / "1").iterdir()) == ["image_00001.jpg", "image_00004.jpg"]
    assert all(p.is_symlink() for p in out.rglob("*.jpg"))
    spec = scan_folder(out)
    assert len(spec.train) == 5 and len(spec.val) == 3 and len(spec.test) == 3 and len(spec.classes) == 3
    assert json.loads((out / "class_names.json").read_text())["102"] == "flower 102"


@pytest.mark.parametrize("case", ["edited labels", "inside the repository", "not empty", "names lack one",
                                  "labels are a FIFO"])
def test_flowers102_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    images, labels, setid = fake_flowers(tmp_path / "src")
    out = tmp_path / "out"
    if case != "edited labels":
        monkeypatch.setattr(flowers, "OFFICIAL_MD5", {"imagelabels.mat": _md5(labels), "setid.mat": _md5(setid)})
    if case == "inside the repository":
        out = REPO / "runs" / "flowers-test"
    elif case == "not empty":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    extra = []
    if case == "names lack one":
        names = tmp_path / "names.json"
        names.write_text(json.dumps({str(k): f"flower {k}" for k in range(1, 102)}))   # no 102
        extra = ["--names", str(names)]
    elif case == "labels are a FIFO":
        labels = tmp_path / "fifo.mat"
        os.mkfifo(labels)                         # would block a plain read for ever
    assert flowers.main([str(images), str(labels), str(setid), str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert ("md5" in err) == (case == "edited labels")
    assert ("FIFO" in err) == (case == "labels are a FIFO")
    assert not (REPO / "runs" / "flowers-test").exists()
    assert sorted(p.name for p in out.rglob("*")) == (["mine.txt"] if case == "not empty" else [])


# --- the runner -------------------------------------------------------------------------------------------------

def test_runner_lists_every_experiment_with_its_command(capsys):
    assert classics.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| experiment | published | command | data here |")
    for name, exp in classics.EXPERIMENTS.items():
        assert f"| {name} | {exp.published} | `convclass " in out
    assert "--data ~/data/mnist`" in out  # typed as-is: the shell expands ~


def test_runner_refuses_an_unknown_experiment_or_missing_data_in_one_line(tmp_path, capsys):
    assert classics.main(["no-such-run"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert classics.main(["tinyimagenet50-cnn5", "--data", str(tmp_path / "none"), "--runs-dir",
                          str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make_tiny50.py" in err and not (tmp_path / "runs").exists()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,extra", [("cifar10-cnn3-keras", []), ("cifar10-cnn6-keras", ["--folds", "2"])])
def test_runner_quick_path_prints_a_marked_row(tmp_path, capsys, rgb_folder, name, extra):
    """--quick runs the row's own command (train, or cv as published) for one epoch and prints a table row that
    says it is a quick check; the run's figures are saved beside it."""
    rc = classics.main([name, "--quick", "--data", str(rgb_folder), "--runs-dir", str(tmp_path), "--quiet",
                        "--no-report", "--workers", "0", "--data-root", str(tmp_path / "cache"), *extra])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"| {name} | {classics.EXPERIMENTS[name].published} | quick check only (--epochs 1")
    assert f"--config examples/seeds/{name}.yaml --data {rgb_folder}" in last
    saved = json.loads(next(tmp_path.glob(f"{name}-*/classics.json")).read_text())
    assert saved["quick"] and 0 <= (saved["metrics"]["mean"] if extra else saved["metrics"])["accuracy"] <= 1


@pytest.mark.timeout(300)
def test_the_stand_in_folder_trains_with_its_seed(tmp_path, capsys):
    """make_tiny50's symlinked folder runs through the 5-block CNN's row: every linked JPEG decodes, and the
    Tiny-ImageNet val images are the test split."""
    src, out = tmp_path / "src", tmp_path / "tiny50"
    fake_tiny_imagenet(src, classes=4)
    assert tiny50.main([str(src), str(out), "--classes", "3", "--cut", "4"]) == 0
    rc = classics.main(["tinyimagenet50-cnn5-rmsprop", "--quick", "--data", str(out), "--runs-dir",
                        str(tmp_path / "runs"), "--quiet", "--no-report", "--data-root", str(tmp_path / "cache")])
    assert rc == 0 and "--optimizer rmsprop --momentum 0" in capsys.readouterr().out
    saved = json.loads(next((tmp_path / "runs").glob("*/classics.json")).read_text())
    assert saved["metrics"]["n"] == 9  # 3 val images for each of the 3 classes
    cfg = load_config(next((tmp_path / "runs").glob("*/run")))
    assert (cfg.model, cfg.optimizer, cfg.momentum, cfg.lr, cfg.img_size) == ("cnn5", "rmsprop", 0.0, 1e-4, 64)
