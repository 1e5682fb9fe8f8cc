"""--data hf:NAME_OR_PATH: a Hugging Face dataset saved with save_to_disk or an imagefolder folder, offline."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error
from convclass.checkpoint import load_checkpoint
from convclass.data import find_data, prepare_data
from convclass.data.sources import DataOptions
from convclass.errors import ConvclassError
from convclass.reporting import load_predictions
from synth import CLASS_COLOURS, rgb_image, write_class_folders

datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.timeout(120)
NAMES = ["rouge", "vert", "bleu"]  # ClassLabel order, not sorted: the run must keep it


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _split(n: int, seed: int, labels=None) -> dict:
    colours = list(CLASS_COLOURS.values())
    return {"img": [{"bytes": _png(rgb_image(colours[i % 3], 16, seed=seed + i)), "path": None} for i in range(n)],
            "fine": labels if labels is not None else [i % 3 for i in range(n)],
            "coarse": ["warm" if i % 3 == 0 else "cold" for i in range(n)],
            "caption": [f"picture {i}" for i in range(n)]}


def _save(path: Path, **splits: dict) -> Path:
    features = datasets.Features({"img": datasets.Image(), "fine": datasets.ClassLabel(names=NAMES),
                                  "coarse": datasets.Value("string"), "caption": datasets.Value("string")})
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in splits.items()}) \
        .save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("hf") / "colours", train=_split(24, 0), test=_split(6, 1000))


def test_a_saved_dataset_dict_trains_with_its_classlabel_names_and_test_split(saved, tmp_path, cli):
    res = cli("train", "--data", f"hf:{saved}", "--model", "shallow", "--epochs", "1", "--batch-size", "16",
              "--device", "cpu", "--no-report", "--quiet", "--runs-dir", tmp_path / "runs", "--data-root",
              tmp_path / "cache", "--name", "hf")
    assert res.rc == 0, res
    assert load_checkpoint(tmp_path / "runs" / "hf" / "best.pt")["classes"] == NAMES
    pred = load_predictions(tmp_path / "runs" / "hf")
    assert len(pred["y_true"]) == 6 and pred["y_true"].tolist() == [0, 1, 2] * 2  # the dataset's own test split
    assert all(p.startswith(f"{saved}/test/") and p.endswith(f"::img[{i}]") for i, p in enumerate(pred["paths"]))


def test_columns_and_splits_found_chosen_or_refused_in_one_line(saved, tmp_path):
    spec = find_data(f"hf:{saved}", options=DataOptions(hf_label_column="coarse"))
    assert spec.classes == ["cold", "warm"] and spec.train.labels[:3].tolist() == [1, 0, 0]
    with pytest.raises(ConvclassError, match=r"no such column; its columns: img \(Image\), fine \(ClassLabel\)"):
        find_data(f"hf:{saved}", options=DataOptions(hf_label_column="fine_label"))
    with pytest.raises(ConvclassError, match="column caption holds Value, not encoded images"):
        find_data(f"hf:{saved}", options=DataOptions(hf_image_column="caption"))
    odd = _save(tmp_path / "odd", a=_split(6, 0), b=_split(6, 50), test=_split(3, 9, labels=[-1] * 3))
    with pytest.raises(ConvclassError, match="splits a, b, test and none is called train.*--hf-split"):
        find_data(f"hf:{odd}")
    spec = find_data(f"hf:{odd}", options=DataOptions(hf_split="b"))
    assert len(spec.train) == 6 and spec.test is None and "the test split has no labels" in " ".join(spec.notes)
    assert spec.train.paths[0].startswith(f"{odd}/b/")
    with pytest.raises(ConvclassError, match="--hf-split c: .* has the splits a, b, test"):
        find_data(f"hf:{odd}", options=DataOptions(hf_split="c"))


def test_an_imagefolder_folder_reads_through_datasets_offline(tmp_path):
    root = tmp_path / "shop"
    write_class_folders(root / "train", per_class=6, size=16)
    write_class_folders(root / "test", per_class=2, size=16, seed=1)
    pd = prepare_data(f"hf:{root}", data_root=str(tmp_path / "cache"), verbose=False)
    assert pd.classes == ["blue", "green", "red"] and (len(pd.train) + len(pd.val), len(pd.test)) == (18, 6)
    assert str(tmp_path / "cache" / "huggingface") in pd.test.paths[0]
    native = prepare_data(str(root), data_root=str(tmp_path / "cache"), verbose=False)
    assert sorted(pd.test.x.reshape(6, -1).sum(1).tolist()) == sorted(native.test.x.reshape(6, -1).sum(1).tolist())


def test_a_hub_name_offline_or_a_missing_folder_is_one_line(cli, monkeypatch, tmp_path):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    assert_one_line_error(cli("inspect", "hf:someone/some-set", "--data-root", tmp_path),
                          "needs the network", "local path")
    assert_one_line_error(cli("inspect", f"hf:{tmp_path}/nope"), "no such folder")
