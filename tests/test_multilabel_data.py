"""Multi-label CSVs: several labels per cell or one-hot columns make (N, K) 0/1 targets; --task overrides."""
from __future__ import annotations

import numpy as np
import pytest

from convclass.data import find_data, prepare_data
from convclass.data.multilabel import read_label_sets, stratify_key
from convclass.data.sources import DataOptions
from convclass.data.table import read_table
from convclass.errors import ConvclassError
from multilabel_synth import LABELS, label_sets, write_multilabel_csv


@pytest.mark.parametrize("sep", ["|", ",", " ", ";"])
def test_separated_labels_become_multi_hot_rows(tmp_path, sep):
    csv = write_multilabel_csv(tmp_path, n=24, sep=sep)
    spec = read_table(csv)
    assert spec.classes == sorted(LABELS)
    want = [[int(c in s) for c in spec.classes] for s in label_sets(24)]
    assert spec.train.labels.shape == (24, 3) and spec.train.labels.tolist() == want
    assert any("multi-label" in n for n in spec.notes)


def test_one_hot_columns_are_read_as_labels(tmp_path):
    spec = read_table(write_multilabel_csv(tmp_path, n=24, one_hot=True))
    want = [[int(c in s) for c in spec.classes] for s in label_sets(24)]
    assert spec.classes == sorted(LABELS) and spec.train.labels.tolist() == want


def test_task_single_reads_each_cell_as_one_class(tmp_path):
    csv = write_multilabel_csv(tmp_path, n=24)
    csv.write_text(csv.read_text().replace(',""', ',"red"'))
    spec = read_table(csv, DataOptions(task="single"))
    assert spec.train.labels.ndim == 1 and "red|green|blue" in spec.classes


def test_task_multi_reads_single_labels_and_empty_cells_as_sets():
    sets, _ = read_label_sets(["cat", "dog", "", "cat"], "multi")
    assert sets == [["cat"], ["dog"], [], ["cat"]]
    assert read_label_sets(["cat", "dog", "cat"], "auto") == (None, None)


def test_multi_word_class_names_stay_single_label():
    names = ["golden retriever", "labrador retriever", "pug", "golden retriever"]
    assert read_label_sets(names, "auto") == (None, None)
    sets, how = read_label_sets(["haze primary", "clear primary", "clear primary water", "haze", "clear water"],
                                "auto")
    assert sets[2] == ["clear", "primary", "water"] and "spaces" in how


@pytest.mark.parametrize("task", ["auto", "single"])
def test_empty_label_in_single_label_csv_says_task_multi(tmp_path, task):
    csv = write_multilabel_csv(tmp_path, n=24, sep="|")
    rows = csv.read_text().splitlines()
    csv.write_text("\n".join([rows[0], rows[1].split(",")[0] + ","] + [r.split(",")[0] + ",red" for r in rows[2:]]))
    with pytest.raises(ConvclassError, match="line 2: no usable label.*--task multi"):
        read_table(csv, DataOptions(task=task))


def test_prepared_multilabel_data_splits_keep_every_label(tmp_path):
    csv = write_multilabel_csv(tmp_path, n=60, rare=0.15)
    data = prepare_data(str(csv), data_root=str(tmp_path / "cache"), val_split=0.2, test_split=0.2, verbose=False)
    assert data.task == "multi" and data.train.y.dtype.is_floating_point and data.train.y.shape[1] == 3
    blue = data.classes.index("blue")
    assert all(float(s.y[:, blue].sum()) >= 1 for s in (data.train, data.val, data.test))  # the rare label too
    assert len(data.train) + len(data.val) + len(data.test) == 60


def test_stratify_key_takes_the_rarest_label():
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]])
    assert stratify_key(y).tolist() == [1, 0, 2, 3]


def test_multilabel_folds_give_every_fold_its_share_of_a_rare_label():
    from convclass.pipeline.crossval import fold_indices
    rng = np.random.default_rng(0)
    y = (rng.random((90, 4)) < [0.5, 0.5, 0.3, 0.1]).astype(np.float32)
    folds = fold_indices(y, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(90))  # each image tested once
    rare = [int(y[f, 3].sum()) for f in folds]
    assert max(rare) - min(rare) <= 1 and min(rare) >= 1


@pytest.mark.timeout(120)
def test_inspect_counts_labels_and_names_label_sets_of_copies(cli, tmp_path):
    import shutil
    csv = write_multilabel_csv(tmp_path, n=24)
    sets = label_sets(24)
    i = next(i for i, s in enumerate(sets) if len(s) >= 2)  # a copy of an image with two labels or more
    shutil.copy(tmp_path / "images" / f"{i}.png", tmp_path / "images" / "copy.png")
    csv.write_text(csv.read_text() + 'images/copy.png,"blue"\n')
    res = cli("inspect", csv, "--output", tmp_path / "out")
    assert res.rc == 0, res.err
    dup = (tmp_path / "out" / "duplicates.csv").read_text().splitlines()
    row = next(r for r in dup if "copy.png" in r).split(",")
    assert "|".join(sorted(sets[i])) in row and row[-1] == "blue"


@pytest.mark.timeout(120)
def test_hugging_face_list_of_classlabels_is_multilabel(tmp_path):
    import io

    datasets = pytest.importorskip("datasets")
    from multilabel_synth import multilabel_image
    names = ["red", "green", "blue"]
    sets = label_sets(20)

    def png(labels, i):
        buf = io.BytesIO()
        from PIL import Image
        Image.fromarray(multilabel_image(labels, seed=i)).save(buf, "PNG")
        return {"bytes": buf.getvalue(), "path": None}
    features = datasets.Features({"image": datasets.Image(),
                                  "labels": datasets.Sequence(datasets.ClassLabel(names=names))})
    rows = {"image": [png(s, i) for i, s in enumerate(sets)], "labels": [[names.index(c) for c in s] for s in sets]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    spec = find_data(f"hf:{tmp_path / 'ds'}")
    assert spec.classes == names and spec.train.labels.tolist() == [[int(c in s) for c in names] for s in sets]
    with pytest.raises(ConvclassError, match="list of labels"):
        find_data(f"hf:{tmp_path / 'ds'}", options=DataOptions(task="single"))
    data = prepare_data(f"hf:{tmp_path / 'ds'}", data_root=str(tmp_path / "cache"), verbose=False)
    assert data.task == "multi" and len(data.train) + len(data.val) + len(data.test) == 20
