"""Hostile multi-label inputs: a CSV naming more labels than any model may have is refused in one line, in bounded
time, before anything is allocated for it; an honest multi-label export still answers. (Exports whose task or
thresholds lie are cases of test_model_files.LIES.)"""
from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from attacks.test_model_files import META, _onnx
from conftest import assert_one_line_error


@pytest.mark.timeout(60)
def test_honest_multilabel_export_answers_labels_at_its_thresholds(tmp_path):
    from convclass.export import load_predictor
    model = load_predictor(_onnx(tmp_path / "m.onnx", {**META, "task": "multi", "thresholds": [0.1, 0.9, 0.5]}))
    p = model.predict_proba(np.full((1, 3, 8, 8), 255, np.uint8))
    assert model.task == "multi" and 0 < float(p.min()) and float(p.max()) < 1  # sigmoid, not softmax


@pytest.mark.timeout(60)
def test_csv_with_more_labels_than_a_model_may_have_is_one_line(cli, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    per_row = 120  # distinct 7-character labels per cell: under the 1,000-character cell limit
    rows = ["path,labels"] + [f'a.png,"{"|".join(f"L{r * per_row + i:06d}" for i in range(per_row))}"'
                              for r in range(850)]  # 102,000 labels, more than MAX_CLASSES
    (tmp_path / "many.csv").write_text("\n".join(rows) + "\n")
    t0 = time.perf_counter()
    res = cli("train", "--data", tmp_path / "many.csv", "--runs-dir", tmp_path / "runs", "--data-root",
              tmp_path / "cache", "--device", "cpu")
    assert time.perf_counter() - t0 < 30
    assert_one_line_error(res, "distinct labels", "more than")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
