"""The classic models have their published shapes: parameter counts worked out by hand from the published layer
lists, the full feature map flattened as the originals do, and the size guard only far above the design size.

Counts are trainable parameters (PyTorch's `parameters()`): a BatchNorm layer of n channels has 2n (scale and
shift). Keras' "Total params" adds its 2n moving mean/variance (non-trainable), which PyTorch keeps as buffers.
"""
from __future__ import annotations

import pytest
import torch

from conftest import assert_one_line_error
from convclass.errors import ConvclassError
from convclass.models import count_parameters, create_model


def conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out  # weights + bias


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def bn(c: int) -> int:
    return 2 * c


PUBLISHED = {
    # Keras MNIST single conv layer: Conv2D(8, 3x3, padding "valid") 28 -> 26, ReLU, Flatten 26*26*8, Dense(10).
    # 80 + 54,090
    ("shallow", 1, 28, 10): conv(3, 1, 8) + dense(26 * 26 * 8, 10),
    # Keras CIFAR-10 CNN: 3 x [Conv2D same, ReLU, BN, MaxPool 2] 32 -> 16 -> 8 -> 4, Flatten 4*4*128 = 2048,
    # Dense 256 + BN + Dropout, Dense 128 + BN + Dropout, Dense 10.
    # (896 + 64) + (18,496 + 128) + (73,856 + 256) + (524,544 + 512) + (32,896 + 256) + 1,290
    ("cnn3", 3, 32, 10): conv(3, 3, 32) + bn(32) + conv(3, 32, 64) + bn(64) + conv(3, 64, 128) + bn(128)
    + dense(2048, 256) + bn(256) + dense(256, 128) + bn(128) + dense(128, 10),
    # Keras CIFAR-10 6-conv CNN: 3 x [Conv BN Conv BN, MaxPool, Dropout] with 32, 64, 128 filters, Flatten 2048,
    # Dense 10. (896 + 64 + 9,248 + 64) + (18,496 + 128 + 36,928 + 128) + (73,856 + 256 + 147,584 + 256) + 20,490
    ("cnn6", 3, 32, 10): conv(3, 3, 32) + bn(32) + conv(3, 32, 32) + bn(32) + conv(3, 32, 64) + bn(64)
    + conv(3, 64, 64) + bn(64) + conv(3, 64, 128) + bn(128) + conv(3, 128, 128) + bn(128) + dense(2048, 10),
    # PyTorch 5-block CNN on 64x64 photos, 50 classes: 5 x [Conv same, BN, ReLU, MaxPool 2] 64 -> 2, Flatten
    # 2*2*512 = 2048, Linear 512, Dropout 0.6, Linear 50.
    # (896 + 64) + (18,496 + 128) + (73,856 + 256) + (295,168 + 512) + (1,180,160 + 1,024) + 1,049,088 + 25,650
    ("cnn5", 3, 64, 50): conv(3, 3, 32) + bn(32) + conv(3, 32, 64) + bn(64) + conv(3, 64, 128) + bn(128)
    + conv(3, 128, 256) + bn(256) + conv(3, 256, 512) + bn(512) + dense(2048, 512) + dense(512, 50),
}
BY_HAND = {("shallow", 1, 28, 10): 54_170, ("cnn3", 3, 32, 10): 653_194, ("cnn6", 3, 32, 10): 308_394,
           ("cnn5", 3, 64, 50): 2_645_298}


@pytest.mark.parametrize("key", PUBLISHED, ids=lambda k: f"{k[0]}-{k[2]}px")
def test_parameter_counts_match_the_published_layer_lists(key):
    name, chans, size, classes = key
    assert PUBLISHED[key] == BY_HAND[key]  # the layer-list arithmetic above, summed by hand
    m = create_model(name, num_classes=classes, in_chans=chans, img_size=size)
    assert count_parameters(m) == BY_HAND[key]
    assert m(torch.zeros(2, chans, size, size)).shape == (2, classes)


def test_shallow_flattens_its_whole_map():
    """No pooling anywhere: the dense layer sees every one of the 26x26x8 conv outputs (the 4x4 average pool
    that held MNIST at 94.78 % is gone)."""
    m = create_model("shallow", num_classes=10, in_chans=1, img_size=28)
    assert not any(isinstance(x, (torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d)) for x in m.modules())
    assert m.classifier_layer().in_features == 26 * 26 * 8


@pytest.mark.parametrize("name,design,grid,chans", [("shallow", 28, 26, 8), ("cnn3", 32, 4, 128),
                                                     ("cnn6", 32, 4, 128), ("cnn5", 64, 2, 512)])
def test_guard_only_past_twice_the_design_side(name, design, grid, chans):
    """Up to 2x the design side the full map is flattened (bigger head); past it, the map is pooled to the design
    grid so the head keeps its published size (shallow at 224 px would otherwise feed 394k inputs per class)."""
    def head_inputs(size):
        m = create_model(name, num_classes=10, in_chans=3, img_size=size)
        first = next(x for x in m.head.modules() if isinstance(x, torch.nn.Linear))
        return first.in_features, any(isinstance(x, torch.nn.AdaptiveAvgPool2d) for x in m.modules())

    at_design, at_double, past = design, 2 * design, 2 * design + 8
    assert head_inputs(at_design) == (chans * grid * grid, False)
    n_double, pooled = head_inputs(at_double)
    assert n_double > chans * grid * grid and not pooled
    assert head_inputs(past) == (chans * grid * grid, True)
    with torch.no_grad():
        m = create_model(name, num_classes=10, in_chans=3, img_size=past).eval()
        assert m(torch.zeros(1, 3, past, past)).shape == (1, 10)


def test_shallow_refuses_images_smaller_than_its_kernel():
    with pytest.raises(ConvclassError, match="at least 3x3"):
        create_model("shallow", num_classes=3, in_chans=1, img_size=2)


def test_an_old_shallow_checkpoint_is_refused_in_one_line(tmp_path, cli, trained_run):
    """A checkpoint convclass wrote before the fix (shallow = padded conv, 2x2 max-pool, 4x4 average pool:
    head.2 = Linear(128, 3) on 16-px images) is refused with one line that says to retrain, not a traceback."""
    ck = torch.load(trained_run.run_dir / "best.pt", weights_only=True)
    assert ck["arch"] == "shallow" and ck["arch_args"]["img_size"] == 16
    ck["model_state"] = {"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8),
                         "head.2.weight": torch.zeros(3, 8 * 4 * 4), "head.2.bias": torch.zeros(3)}
    torch.save(ck, tmp_path / "old.pt")
    assert_one_line_error(cli("evaluate", tmp_path / "old.pt", "--device", "cpu"), "old.pt", "retrain")

