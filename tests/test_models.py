"""Every registered model, generated from the registry: shapes, gradients, save/load, head swap, Grad-CAM layer."""
from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn as nn

from convclass.errors import ConvclassError
from convclass.models import create_model, list_models, model_entry

MODELS = list_models()
# 24M and 88M parameters: built once (RGB, 32 px) for the forward / head / Grad-CAM checks; their backward and
# save/load checks are `slow` (the builders are the ones resnet18 and convnext_tiny exercise in the fast run).
HEAVY = {"convnext_base", "resnet50"}
NUM_CLASSES = 5


def img_size(name: str) -> int:
    # The ImageNet families cost 4x less at 16 px than at 32 and still pass every stage (a 1x1 map at the end).
    return 32 if model_entry(name).default_img_size <= 32 else 16

_built: dict[tuple[str, int], nn.Module] = {}


def build(name: str, in_chans: int) -> nn.Module:
    key = (name, in_chans)
    if key not in _built:
        torch.manual_seed(0)
        _built[key] = create_model(name, num_classes=NUM_CLASSES, in_chans=in_chans, img_size=img_size(name))
    return _built[key]


def cases(heavy_is_slow: bool = False) -> list:
    out = []
    for name in MODELS:
        for c in ((3,) if name in HEAVY else (1, 3)):
            marks = [pytest.mark.slow] if heavy_is_slow and name in HEAVY else []
            out.append(pytest.param(name, c, id=f"{name}-c{c}", marks=marks))
    return out


def batch(name: str, in_chans: int, n: int = 2) -> torch.Tensor:
    size = img_size(name)
    return torch.randn(n, in_chans, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name,in_chans", cases())
def test_forward_shape_and_interface(name, in_chans):
    m = build(name, in_chans).eval()
    x = batch(name, in_chans)
    with torch.no_grad():
        logits = m(x)
        feats = m.forward_features(x)
        via_parts = m.forward_head(feats)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits, via_parts, atol=1e-5), "forward != forward_head(forward_features)"
    assert m.num_classes == NUM_CLASSES


@pytest.mark.parametrize("name,in_chans", cases(heavy_is_slow=True))
def test_backward_gives_finite_grads_everywhere(name, in_chans):
    m = build(name, in_chans).train()
    m.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(m(batch(name, in_chans)), torch.tensor([0, 1]))
    loss.backward()
    trainable = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    # The first and last layers both learn: a detached stem or head would leave one of them at zero.
    assert trainable[0][1].grad.abs().sum() > 0 and trainable[-1][1].grad.abs().sum() > 0
    m.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name,in_chans", cases(heavy_is_slow=True))
def test_state_dict_round_trip_gives_identical_outputs(name, in_chans):
    m = build(name, in_chans).eval()
    x = batch(name, in_chans)
    with torch.no_grad():
        before = m(x)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    # Change every weight and buffer in place (cheaper than a second model, same proof), then load them back.
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.add_(0.05)
        assert not torch.equal(m(x), before), "perturbing the weights changed nothing; the test would prove nothing"
        buf.seek(0)
        m.load_state_dict(torch.load(buf, weights_only=True))
        assert torch.equal(m(x), before)


@pytest.mark.parametrize("name,in_chans", cases())
def test_reset_classifier_changes_class_count(name, in_chans):
    m = build(name, in_chans).eval()
    old_head = copy.deepcopy(m.head)
    features_before = {k: v.clone() for k, v in m.features.state_dict().items()}
    try:
        old_linear = m.classifier_layer()
        m.reset_classifier(7)
        assert m.num_classes == 7 and m.classifier_layer() is not old_linear
        with torch.no_grad():
            assert m(batch(name, in_chans)).shape == (2, 7)
        # Only the head changed.
        assert all(torch.equal(v, features_before[k]) for k, v in m.features.state_dict().items())
    finally:
        m.head = old_head  # the cached model goes back to NUM_CLASSES for the other tests


@pytest.mark.parametrize("name,in_chans", cases())
def test_gradcam_layer_names_the_last_conv(name, in_chans):
    m = build(name, in_chans)
    layer = m.gradcam_layer()
    convs = [n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)]
    if not convs:
        assert layer is None
        return
    modules = dict(m.named_modules())
    assert layer in modules and isinstance(modules[layer], nn.Conv2d)
    # Grad-CAM needs a spatial map: the hooked layer's output keeps H and W.
    seen = {}
    h = modules[layer].register_forward_hook(lambda mod, i, o: seen.setdefault("o", o))
    with torch.no_grad():
        m.eval()(batch(name, in_chans))
    h.remove()
    assert seen["o"].ndim == 4


def test_mlp_has_no_gradcam_layer():
    assert create_model("mlp", num_classes=3, in_chans=1, img_size=8).gradcam_layer() is None


# Digits are 8x8 and MNIST 28x28: every model must run at the small sizes the built-in datasets have.
@pytest.mark.parametrize("name,img_size", [(n, size) for n in MODELS if n not in HEAVY
                                           for size in ((8, 28) if model_entry(n).default_img_size <= 32 else (8,))])
def test_small_native_sizes(name, img_size):
    torch.manual_seed(0)
    m = create_model(name, num_classes=10, in_chans=1, img_size=img_size).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, img_size, img_size)).shape == (2, 10)
    m.train()(torch.randn(2, 1, img_size, img_size)).sum().backward()  # training on 8x8 works too


def test_unknown_model_and_bad_knob_are_user_errors():
    with pytest.raises(ConvclassError, match="unknown model"):
        create_model("resnet999", num_classes=3)
    with pytest.raises(ConvclassError, match="model argument"):
        create_model("cnn3", num_classes=3, widht=2)


def test_width_knob_changes_size():
    small = create_model("cnn3", num_classes=3, in_chans=3, img_size=32, width=0.5)
    big = create_model("cnn3", num_classes=3, in_chans=3, img_size=32, width=2.0)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())
