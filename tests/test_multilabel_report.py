"""The multi-label report's calibration per label (ECE in the table, reliability panels) and its grids of the most
confident false positives and negatives per label, read from the stored paths or handed over by the caller."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convclass.metrics import label_calibration, label_errors, multilabel_metrics
from convclass.reporting import build_report, save_predictions
from convclass.reporting import multilabel as report
from multilabel_synth import LABELS, multilabel_image

CLASSES = list(LABELS)  # red, green, blue


def test_label_calibration_by_hand():
    y = np.array([[1, 1], [0, 1], [1, 0], [0, 0]])
    p = np.array([[.85, .75], [.85, .75], [.15, .75], [.15, .75]])
    first, second = label_calibration(y, p)
    # label 0: half the images at p .85 hold it, half at .15 do: |.5 - .85| and |.5 - .15| -> ECE .35
    assert first["ece"] == pytest.approx(0.35) and second["ece"] == pytest.approx(0.25)  # 2 of 4 at p .75
    assert first["bins"]["accuracy"][8] == pytest.approx(0.5) and first["bins"]["confidence"][8] == pytest.approx(.85)
    assert label_calibration(np.array([[1], [1], [1], [0]]), np.full((4, 1), 0.75))[0]["ece"] == pytest.approx(0)


def test_label_errors_are_the_most_confident_first():
    y = np.array([[0], [0], [0], [1], [1], [1]])
    p = np.array([[.6], [.9], [.3], [.8], [.2], [.45]])
    fp, fn = label_errors(y, p, [0.5], 0)
    assert fp.tolist() == [1, 0] and fn.tolist() == [4, 5]
    fp, fn = label_errors(y, p, [0.25], 0, n=2)  # the threshold decides what is an error
    assert fp.tolist() == [1, 0] and fn.tolist() == [4]
    m = {"thresholds": [0.5], "classes": ["red"]}
    note = report._error_grid(y, y * 0.9, m, None, [], Path("unused.png"))  # every image right
    assert "No label is wrong" in note and not Path("unused.png").exists()


def _eval_folder(tmp_path):
    """An evaluation folder of 12 images on disk: predictions.npz with their paths and metrics.json."""
    rng = np.random.default_rng(0)
    y = (rng.random((12, 3)) < 0.5).astype(np.int64)
    probs = np.clip(y * 0.6 + rng.random((12, 3)) * 0.5, 0, 1)
    probs[0, 2], y[0, 2] = 0.99, 0  # the most confident false positive of blue
    paths = []
    for i, row in enumerate(y):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(multilabel_image([CLASSES[k] for k in np.flatnonzero(row)], seed=i)).save(paths[-1])
    folder = tmp_path / "eval-test"
    folder.mkdir()
    save_predictions(folder, y, probs, CLASSES, paths)
    (folder / "metrics.json").write_text(json.dumps(multilabel_metrics(y, probs, CLASSES, [0.5, 0.5, 0.5])))
    return folder, y, probs, paths


@pytest.fixture
def mosaics(monkeypatch):
    """The rows of images and row labels of every error grid drawn."""
    seen, real = [], report.plot_mosaic

    def spy(rows, path, title, **kw):
        seen.append((rows, kw["row_labels"]))
        return real(rows, path, title, **kw)
    monkeypatch.setattr(report, "plot_mosaic", spy)
    return seen


@pytest.mark.timeout(60)
def test_report_shows_ece_per_label_and_the_worst_errors_read_from_paths(tmp_path, mosaics):
    folder, y, probs, paths = _eval_folder(tmp_path)
    page = build_report(folder).read_text()
    assert "<th>ECE</th>" in page and "Calibration per label" in page and "Largest errors per label" in page
    for c in label_calibration(y, probs):
        assert f"<td>{c['ece']:.3f}</td>" in page
    assert (folder / "figures" / "label_reliability.png").is_file()
    assert (folder / "figures" / "label_errors.png").is_file()
    (rows, labels), = mosaics  # a row per label and kind of error that has any (3 labels: all of them)
    assert len(rows) == sum(len(i) > 0 for k in range(3) for i in label_errors(y, probs, [.5] * 3, k))
    blue = labels.index("blue: false +")
    fp, _ = label_errors(y, probs, [0.5] * 3, 2)
    assert fp[0] == 0 and np.array_equal(rows[blue][0], np.asarray(Image.open(paths[0])))


@pytest.mark.timeout(60)
def test_error_grid_takes_the_callers_images_and_is_left_out_when_none_are_at_hand(tmp_path, mosaics):
    folder, y, probs, paths = _eval_folder(tmp_path)
    for p in paths:  # the data moved after the evaluation
        Path(p).unlink()
    images = np.stack([np.full((3, 8, 8), i, np.uint8) for i in range(len(y))])  # (N, C, H, W), image i all i
    build_report(folder, images=images)
    (rows, labels), = mosaics
    assert rows[labels.index("blue: false +")][0].max() == 0  # image 0, from the caller
    mosaics.clear()
    (folder / "figures" / "label_errors.png").unlink()
    page = build_report(folder).read_text()
    assert not mosaics and "not at hand" in page and not (folder / "figures" / "label_errors.png").exists()
