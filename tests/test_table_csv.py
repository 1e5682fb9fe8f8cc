"""CSV/TSV files as datasets publish them (data/table.py): sniffed delimiter, optional header, path and label
columns found by name or chosen, bare names under an image folder, ids without extension, one-line errors."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error

from convclass.config import TrainConfig
from convclass.data import find_data, prepare_data
from convclass.data.sources import DataOptions
from convclass.errors import ConvclassError
from synth import write_class_folders


def _images(root: Path, classes=("red", "green"), per_class: int = 3, ext: str = "png") -> dict[str, list[Path]]:
    return write_class_folders(root, per_class=per_class, size=8, classes=list(classes), ext=ext)


def test_semicolon_csv_with_header_bare_names_and_integer_labels(tmp_path):
    """GTSRB's test CSV as published: `;`, a BOM, CRLF, a header of other columns too, bare file names relative
    to a Test/ folder beside it, integer labels where the training folders are zero-padded."""
    files = _images(tmp_path / "src", classes=("00001", "00016"))
    rows = ["Filename;Width;Height;ClassId"]
    for c, paths in files.items():
        for i, p in enumerate(paths):
            (tmp_path / "gtsrb" / "Test").mkdir(parents=True, exist_ok=True)
            shutil.copy(p, tmp_path / "gtsrb" / "Test" / f"{c}{i}.png")
            rows.append(f"{c}{i}.png;8;8;{int(c)}")
    csv_path = tmp_path / "gtsrb" / "GT-final_test.csv"
    csv_path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode())
    for opts in (DataOptions(), DataOptions(image_root=str(tmp_path / "gtsrb" / "Test"), label_column="ClassId",
                                            path_column=0)):
        spec = find_data(str(csv_path), options=opts)
        assert spec.classes == ["1", "16"]
        assert all(os.path.isfile(p) for p in spec.train.paths) and len(spec.train.paths) == 6
        assert [spec.classes[y] for y in spec.train.labels] == ["1"] * 3 + ["16"] * 3
    pd = prepare_data(str(csv_path), data_root=str(tmp_path / "cache"), verbose=False)
    assert len(pd.train) + len(pd.val) + len(pd.test) == 6 and not pd.broken


@pytest.mark.parametrize("ext", [None, ".jpg", "jpg"])
def test_kaggle_ids_without_extension_in_a_train_folder(tmp_path, ext):
    """train.csv `id,label` with ids that have no extension, the images in train/ (and a test/ beside it)."""
    files = _images(tmp_path / "src", ext="jpg")
    rows = ["id,label"]
    for c, paths in files.items():
        for p in paths:
            (tmp_path / "kaggle" / "train").mkdir(parents=True, exist_ok=True)
            shutil.copy(p, tmp_path / "kaggle" / "train" / f"{c}{p.stem[-3:]}.jpg")
            rows.append(f"{c}{p.stem[-3:]},{c}")
    (tmp_path / "kaggle" / "test").mkdir()
    (tmp_path / "kaggle" / "train.csv").write_text("\n".join(rows) + "\n")
    spec = find_data(str(tmp_path / "kaggle" / "train.csv"), options=DataOptions(image_ext=ext))
    assert spec.classes == ["green", "red"]
    assert all(p.endswith(".jpg") and os.path.isfile(p) and Path(p).parent.name == "train" for p in spec.train.paths)
    assert [spec.classes[y] for y in spec.train.labels] == [Path(p).name[:-7] for p in spec.train.paths]


def test_tsv_of_image_id_and_category_keeps_a_group_column(tmp_path):
    files = _images(tmp_path / "images")
    rows = ["patient\timage_id\tcategory"]
    for c, paths in files.items():
        rows += [f"p{i % 2}\t{c}/{p.name}\t{c}" for i, p in enumerate(paths)]
    (tmp_path / "labels.tsv").write_text("\n".join(rows) + "\n")
    spec = find_data(str(tmp_path / "labels.tsv"))
    assert spec.classes == ["green", "red"] and len(spec.train) == 6
    assert all(os.path.isfile(p) and Path(p).parent.parent.name == "images" for p in spec.train.paths)
    assert spec.train.groups.tolist() == ["p0", "p1", "p0"] * 2
    assert spec.train.subset([5, 0]).groups.tolist() == ["p0", "p0"]


def test_headerless_rows(tmp_path):
    files = _images(tmp_path, classes=("cat", "dog"), per_class=2)
    lines = [f"{c}/{p.name}|{c}" for c, paths in files.items() for p in paths]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    spec = find_data(str(tmp_path / "list.csv"))
    assert spec.classes == ["cat", "dog"] and spec.train.labels.tolist() == [0, 0, 1, 1]
    (tmp_path / "named.csv").write_text("photo,kind\n" + "\n".join(ln.replace("|", ",") for ln in lines))
    spec = find_data(str(tmp_path / "named.csv"))  # a header of names convclass does not know
    assert spec.classes == ["cat", "dog"] and len(spec.train) == 4


def test_options_come_from_yaml_flags_and_the_api(tmp_path):
    cfg = TrainConfig().update(path_column="Filename", label_column=3, image_ext=".ppm")
    assert DataOptions.from_config(cfg) == DataOptions(path_column="Filename", label_column=3, image_ext=".ppm")
    assert DataOptions.from_config({"label_column": "y"}).label_column == "y"  # a checkpoint's recorded config
    with pytest.raises(ConvclassError, match="--label-column must be"):
        TrainConfig().update(label_column=[3])


BAD = {  # CSV text, options, what the one line must say
    "short row": ("path,label\nred/red_000.png,red\nred/red_001.png\n", {}, ["line 3", "red_001.png", "columns"]),
    "empty label": ("path,label\nred/red_000.png,red\nred/red_001.png,\n", {}, ["line 3", "no usable label"]),
    "NUL in a path": ("path,label\nred/red_000.png,red\nred/r\0.png,red\n", {}, ["line 3", "NUL"]),
    "huge field": ("path,label\nred/red_000.png,red\n" + "x" * 200_000 + ",red\n", {}, ["line 3", "field"]),
    "unknown column": ("Filename;ClassId\nred/red_000.png;red\n", {"label_column": "Class"},
                       ["no column 'Class'", "Filename, ClassId"]),
    "no label column": ("image,width\nred/red_000.png,8\n", {}, ["no label column", "0:image, 1:width",
                                                                 "--label-column"]),
    "ids as labels": ("path,label\n" + "".join(f"red/red_000.png,n{i}\n" for i in range(25)), {},
                      ["different label on every row", "--label-column"]),
    "files not found": ("id,label\nnope1,red\nnope2,green\n", {}, ["line 2", "none of the first 2 images",
                                                                   "--image-root", "--image-ext"]),
    "bad extension": ("path,label\nred/red_000.png,red\n", {"image_ext": "../x"}, ["--image-ext must be"]),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(BAD))
def test_bad_rows_are_one_line_errors_naming_the_line(tmp_path, case):
    text, opts, needles = BAD[case]
    _images(tmp_path, classes=("red",), per_class=2)
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ConvclassError) as e:
        find_data(str(tmp_path / "bad.csv"), options=DataOptions(**opts))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 700, msg
    for n in needles:
        assert n in msg, (n, msg)


@pytest.mark.timeout(60)
def test_cli_error_names_the_flag(cli, tmp_path):
    (tmp_path / "t.csv").write_text("Filename;Width;ClassId\na.png;8;1\n")
    res = cli("train", "--data", tmp_path / "t.csv", "--path-column", "Path", "--runs-dir", tmp_path / "runs")
    assert_one_line_error(res, "no column 'Path'", "Filename, Width, ClassId")
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_paths_outside_the_image_root_follow_the_old_rules(tmp_path):
    """Relative names are under --image-root; `..` and absolute names reach files elsewhere, as a plain
    path,label CSV always could. Whatever a row names is opened only as a bounded regular file: a FIFO is
    skipped as broken at once, never waited on."""
    files = _images(tmp_path / "data" / "imgs")
    outside = tmp_path / "elsewhere.png"
    shutil.copy(files["red"][0], outside)
    os.mkfifo(tmp_path / "data" / "imgs" / "pipe.png")
    rows = ["image,class"] + [f"{c}/{p.name},{c}" for c, paths in files.items() for p in paths]
    rows += ["../../elsewhere.png,red", f"{outside},red", "pipe.png,green"]
    (tmp_path / "data" / "meta").mkdir()
    (tmp_path / "data" / "meta" / "list.csv").write_text("\n".join(rows) + "\n")
    t = time.monotonic()
    pd = prepare_data(str(tmp_path / "data" / "meta" / "list.csv"), data_root=str(tmp_path / "cache"),
                      options=DataOptions(image_root=str(tmp_path / "data" / "imgs")), verbose=False)
    assert time.monotonic() - t < 30
    assert len(pd.train) + len(pd.val) + len(pd.test) == 8
    assert [Path(p).name for p, _ in pd.broken] == ["pipe.png"]
    assert str(outside) in [p for s in (pd.train, pd.val, pd.test) for p in s.paths]
