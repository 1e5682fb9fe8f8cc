"""Multi-label metrics (scikit-learn underneath) and per-label thresholds tuned for F1."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from convclass.metrics import mean_average_precision, multilabel_metrics, tune_thresholds


def test_metrics_on_a_hand_worked_example():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[.9, .2, .6], [.1, .8, .4], [.7, .3, .2], [.2, .1, .1]])
    m = multilabel_metrics(y, p, ["a", "b", "c"])
    pred = (p >= 0.5).astype(int)  # rows 0, 1, 3 exact; row 2 misses b
    assert m["subset_accuracy"] == pytest.approx(3 / 4)
    assert m["hamming_loss"] == pytest.approx(1 / 12)
    assert m["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert [r["ap"] for r in m["per_label"]] == pytest.approx([1.0, 1.0, 1.0])  # every label ranked perfectly
    assert m["map"] == pytest.approx(1.0) and m["per_label"][1]["recall"] == pytest.approx(0.5)


def test_an_absent_label_is_left_out_of_map_and_macro():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[.9, .7], [.2, .1], [.8, .3]])
    m = multilabel_metrics(y, p, ["a", "b"])
    assert m["per_label"][1]["ap"] is None and m["map"] == pytest.approx(1.0) and m["f1_macro"] == pytest.approx(1.0)
    assert mean_average_precision(y, p) == pytest.approx(1.0)
    assert np.isnan(mean_average_precision(np.zeros((2, 2)), np.zeros((2, 2))))


def test_tuned_thresholds_beat_half_on_a_skewed_label():
    """A rare label the model under-scores (positives near 0.3, negatives near 0.1): 0.5 predicts it never."""
    rng = np.random.default_rng(0)
    n = 400
    y = np.zeros((n, 2), np.int64)
    y[:, 0] = rng.random(n) < 0.5                     # a common label, scored well
    y[:, 1] = rng.random(n) < 0.08                    # a rare one
    p = np.stack([np.clip(y[:, 0] * 0.6 + 0.2 + rng.normal(0, .1, n), 0, 1),
                  np.clip(y[:, 1] * 0.2 + 0.1 + rng.normal(0, .04, n), 0, 1)], 1)
    val, test = slice(0, 200), slice(200, None)
    t = tune_thresholds(y[val], p[val])
    assert 0.1 < t[1] < 0.3
    tuned = multilabel_metrics(y[test], p[test], ["common", "rare"], t)["per_label"][1]["f1"]
    half = multilabel_metrics(y[test], p[test], ["common", "rare"])["per_label"][1]["f1"]
    assert half == 0.0 and tuned > 0.8


def test_threshold_falls_between_scores_and_an_unseen_label_keeps_half():
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    p = np.array([[.8, .1], [.6, .2], [.4, .3], [.1, .4]])
    t = tune_thresholds(y, p)
    assert t[0] == pytest.approx(0.5) and t[1] == 0.5  # halfway between 0.6 (kept) and 0.4 (dropped)
