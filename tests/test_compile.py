"""--compile: the training steps run through torch.compile; the weights it learns are the eager run's (up to
kernel rounding; dropout draws the eager masks) and checkpoints keep the model's own keys (--resume may switch it:
tests/test_config.py)."""
from __future__ import annotations

import pytest
import torch

from convclass.checkpoint import load_checkpoint
from convclass.training import train

pytestmark = pytest.mark.timeout(300)


def test_compiled_training_learns_the_eager_weights(rgb_folder, tmp_path):
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    threads = torch.get_num_threads()
    # 2 threads: inductor's one-thread kernels sum in another order, and 2 epochs of a 16-px toy set with BatchNorm
    # over 8 images amplify that to 1e-4 (no dropout) .. 5e-4; with two threads the arms agree to 5e-7.
    args = dict(data=str(rgb_folder), model="cnn3", epochs=2, batch_size=8, lr=0.01, optimizer="sgd", device="cpu",
                report=False, quiet=True, val_split=0.5, runs_dir=str(tmp_path / "runs"),
                data_root=str(tmp_path / "cache"), augment="flip-crop", threads=2)
    try:
        eager = train(name="eager", **args)
        compiled = train(name="compiled", compile=True, **args)
    finally:
        torch.set_num_threads(threads)
    assert counters["stats"]["unique_graphs"] >= 1          # the steps really ran through dynamo
    a = load_checkpoint(eager.run_dir / "last.pt")["model_state"]
    b = load_checkpoint(compiled.run_dir / "last.pt")["model_state"]
    assert list(a) == list(b)                                # no `_orig_mod.` prefix in the checkpoint
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    assert compiled.history[-1]["train_loss"] == pytest.approx(eager.history[-1]["train_loss"], rel=1e-3)
    torch._dynamo.reset()



def test_compile_without_a_cpp_compiler_is_refused_in_one_line_before_the_data(tmp_path, monkeypatch):
    import torch._inductor.cpp_builder as cpp_builder
    from convclass.errors import ConvclassError

    def no_compiler():
        raise RuntimeError("Compiler: g++ is not found")
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(ConvclassError) as e:
        train(data=str(tmp_path / "not-read"), model="shallow", epochs=1, device="cpu", compile=True, quiet=True,
              runs_dir=str(tmp_path / "runs"))
    assert "C++ compiler" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "runs").exists()
