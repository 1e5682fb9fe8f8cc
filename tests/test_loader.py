"""Per-image augmentation in DataLoader workers: chosen only when it pays, the same images as in-process for the
same seed, whatever the worker count, and a whole run trains through it."""
from __future__ import annotations

import pytest
import torch

from test_training import digits_run, read_metrics


def _batches(n=40, b=8):
    return list(torch.randperm(n, generator=torch.Generator().manual_seed(0)).split(b))


def test_auto_workers_only_for_per_image_augmentation():
    from convclass.data import build_augment
    from convclass.data.loader import auto_workers
    rand, batchwise = build_augment("randaugment", 16, 3), build_augment("flip-crop", 16, 3)
    assert auto_workers(batchwise, None, cores=16) == 0 and auto_workers(batchwise, 3, cores=16) == 0
    assert auto_workers(None, 3) == 0
    assert [auto_workers(rand, None, cores=c) for c in (1, 2, 3, 8, 64)] == [0, 0, 1, 4, 4]
    assert auto_workers(rand, 2, cores=2) == 2 and auto_workers(rand, 0, cores=64) == 0


def test_worker_stream_augments_every_image_in_order_and_repeats_with_the_seed():
    from convclass.data import build_augment
    from convclass.data.loader import batch_stream
    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 12, 12).contiguous()
    x[:, :, :6] = 255  # top half white: a shift or a rotation shows; the bottom half carries the image's index
    aug = build_augment("shift-rotate", 12, 3)
    batches = _batches()

    def run(workers):
        return list(batch_stream(x, batches, aug, 0, workers, torch.Generator().manual_seed(5)))

    a, b = run(2), run(2)
    assert [t.shape for t in a] == [(8, 3, 12, 12)] * 5 and all(t.dtype == torch.uint8 for t in a)
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # same seed, same workers: same images
    changed = sum(not torch.equal(out[i], x[idx[i]]) for out, idx in zip(a, batches) for i in range(8))
    assert changed >= 20  # augmented, not passed through
    for out, idx in zip(a, batches):  # each output comes from its own source image, in the batch's order
        assert torch.equal(out[:, 0, 8:10, 3:9].reshape(len(out), -1).median(1).values.long(), idx)
    assert all(torch.equal(p, q) for p, q in zip(a, run(0)))  # in-process: the same images


@pytest.mark.parametrize("workers", [0, 2])
def test_run_with_per_image_augmentation_learns_and_resumes_exactly(tmp_path, workers):
    from convclass import train
    common = dict(augment="randaugment", workers=workers, epochs=2, lr=3e-3)
    full = digits_run(tmp_path, name="full", **common)
    rows = read_metrics(full.run_dir)
    assert len(rows) == 2 and float(rows[-1]["val_acc"]) > 0.5 and full.config.workers == workers
    cut = digits_run(tmp_path, name="cut", callbacks=[lambda row, run: row["epoch"] == 1], **common)
    resumed = train(resume=cut.run_dir, quiet=True)
    assert read_metrics(resumed.run_dir) == rows  # the resumed epoch saw the same augmented images


def test_negative_workers_is_a_clear_error(tmp_path):
    from convclass.errors import ConvclassError
    with pytest.raises(ConvclassError, match="--workers must be 0 or more"):
        digits_run(tmp_path, workers=-1)
