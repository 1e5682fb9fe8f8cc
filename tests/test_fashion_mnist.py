"""Real data: cnn3 on a 3,000-image stratified subset of Fashion-MNIST (Debian's dataset-fashion-mnist)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convclass.data.builtin import DEBIAN_FASHION
from convclass import train

pytestmark = pytest.mark.skipif(
    not (Path(DEBIAN_FASHION) / "train-images-idx3-ubyte.gz").exists(),
    reason=f"Fashion-MNIST not installed at {DEBIAN_FASHION} (`apt-get install dataset-fashion-mnist`)")


def test_cnn3_learns_fashion_mnist_from_a_small_subset(tmp_path):
    # val_split 0.02 keeps validation at 1,200 images; the 10,000-image test split is Fashion-MNIST's own.
    res = train(data="fashion-mnist", model="cnn3", subset=3000, epochs=2, val_split=0.02, batch_size=64,
                device="cpu", report=False, quiet=True, runs_dir=str(tmp_path / "runs"),
                data_root=str(tmp_path / "cache"))
    m = res.test_metrics
    assert m["n"] == 10_000
    assert m["accuracy"] > 0.70, m["accuracy"]  # chance is 0.10; 2 epochs on 3k images reach about 0.8
    assert m["f1_macro"] > 0.6  # not one class carrying the accuracy
    cm = np.asarray(m["confusion_matrix"])
    assert cm.sum(1).tolist() == [1000] * 10  # the official test split is balanced
