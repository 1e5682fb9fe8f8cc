"""EfficientNet-Lite0's ReLU6 trains with a backward that reads its output: same gradients, less kept memory."""
import torch
import torch.nn as nn
from torch.autograd.graph import saved_tensors_hooks

from convclass.models.efficientnet_lite import LeanReLU6, efficientnet_lite0


def test_same_values_and_gradients_as_relu6_including_the_edges():
    x = torch.tensor([-1.0, 0.0, 0.5, 6.0, 6.5, 3.0]).repeat(4).reshape(2, 3, 2, 2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(2, 3, 2, 2)
    y = LeanReLU6().train()(x)
    y.backward(g)
    y_ref = nn.ReLU6()(x_ref)
    y_ref.backward(g)
    assert torch.equal(y, y_ref) and torch.equal(x.grad, x_ref.grad)


def _saved_bytes(module, x) -> int:
    seen = {}

    def pack(t):
        seen[t.data_ptr()] = t.numel() * t.element_size()
        return t
    with saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    return sum(seen.values())


def test_the_network_keeps_less_for_backward_than_with_inplace_relu6():
    torch.manual_seed(0)
    model = efficientnet_lite0(10, img_size=64).train()
    x = torch.randn(2, 3, 64, 64)
    lean = _saved_bytes(model, x)
    for block in model.modules():
        if isinstance(getattr(block, "act", None), LeanReLU6):
            block.act = nn.ReLU6(inplace=True)
    assert lean < 0.95 * _saved_bytes(model, x)  # 0.90x here; at 224 px 70 against 86 MB per image


def test_evaluation_and_no_grad_use_the_plain_operator():
    act = LeanReLU6().eval()
    x = torch.randn(3, requires_grad=True)
    assert act(x).grad_fn.__class__.__name__.startswith("Hardtanh")
    with torch.no_grad():
        assert act.train()(x).grad_fn is None
