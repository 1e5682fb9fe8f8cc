"""Pieces of the fast CPU path: exact channel statistics, airbench's alternating flips and lookahead, the
triangle schedule, and the allocator setting."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from test_training import digits_run, read_metrics


def test_channel_stats_match_float_computation():
    from convclass.data.prepare import channel_stats
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 3, 9, 7), dtype=torch.uint8, generator=g)
    x[:, 1] //= 4  # channels with different statistics
    mean, std = channel_stats(x)
    f = x.double() / 255
    assert mean == pytest.approx(f.mean((0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx(f.std((0, 2, 3), unbiased=False).tolist(), abs=1e-12)
    assert channel_stats(torch.full((5, 1, 4, 4), 9, dtype=torch.uint8))[1] == [1e-3]  # flat image: floor


def _asymmetric_batch(n=64, size=8):
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    x[:, :, :, 0] = 0
    x[:, :, :, -1] = 255  # no image equals its mirror
    return x


def test_alternating_flips_show_every_image_both_ways_over_two_epochs():
    from convclass.data.augment import AlternatingFlipTranslate
    x, idx = _asymmetric_batch(), torch.arange(100, 164)
    aug = AlternatingFlipTranslate(pad=0)
    e0, e1, e2 = (aug(x, idx, epoch, torch.Generator()) for epoch in (0, 1, 2))
    mirrored0 = torch.tensor([torch.equal(e0[i], x[i].flip(2)) for i in range(len(x))])
    plain0 = torch.tensor([torch.equal(e0[i], x[i]) for i in range(len(x))])
    assert bool((mirrored0 ^ plain0).all())  # each image is either mirrored or untouched
    assert 20 <= int(mirrored0.sum()) <= 44  # about half start mirrored
    for i in range(len(x)):  # the next epoch shows the other side; the one after repeats the first
        assert torch.equal(e1[i], x[i] if mirrored0[i] else x[i].flip(2))
    assert torch.equal(e0, e2)
    # the choice follows the image (its dataset index), not its position in the batch
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(2))
    assert torch.equal(aug(x[perm], idx[perm], 0, torch.Generator()), e0[perm])


def test_alternating_flip_translate_shifts_by_at_most_pad():
    from convclass.data.augment import AlternatingFlipTranslate
    x, idx = _asymmetric_batch(n=40, size=12), torch.arange(40)
    flipped = AlternatingFlipTranslate(pad=0)(x, idx, 3, torch.Generator().manual_seed(0))
    out = AlternatingFlipTranslate(pad=2)(x, idx, 3, torch.Generator().manual_seed(0))
    padded = F.pad(flipped.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    offsets = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(out[i], padded[i, :, dy:dy + 12, dx:dx + 12])]
        assert hits, f"image {i} is not a shift of at most 2 px of its (alternately flipped) input"
        offsets.add(hits[0])
    assert len(offsets) > 5  # the shifts really vary


def test_triangle_schedule_shape():
    from convclass.training.schedule import build_scheduler
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched, when = build_scheduler(opt, "triangle", epochs=4, steps_per_epoch=25, lr=2.0)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert when == "batch"
    assert lrs[0] == pytest.approx(0.4)  # 0.2x
    assert max(lrs) == pytest.approx(2.0) and lrs.index(max(lrs)) == 23
    assert lrs[-1] == pytest.approx(2.0 * (1 - 0.93 * 76 / 77))  # falling linearly toward 0.07x
    assert all(a <= b for a, b in zip(lrs[:23], lrs[1:24])) and all(a >= b for a, b in zip(lrs[23:], lrs[24:]))


def test_lookahead_pulls_weights_toward_the_slow_copy():
    from convclass.training.hooks.lookahead import Lookahead
    model = torch.nn.Linear(3, 2)
    la = Lookahead(model, total_steps=10, every=5)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    la.after_step(4)  # not a multiple of 5: nothing happens
    assert torch.equal(model.weight, w0 + 1)
    la.after_step(5)
    d = 0.95 ** 5 * 0.5 ** 3
    expect = d * w0 + (1 - d) * (w0 + 1)
    assert torch.allclose(model.weight, expect) and torch.allclose(la.slow["weight"], expect)
    with torch.no_grad():
        model.weight.add_(3.0)
    la.finish()  # the run ends on the slow weights
    assert torch.allclose(model.weight, expect)


def test_lookahead_run_resumes_bit_exactly(tmp_path):
    common = dict(optimizer="sgd", lr=0.05, momentum=0.85, schedule="triangle", lookahead=True, epochs=3,
                  augment="alt-flip-translate")
    full = digits_run(tmp_path, name="full", **common)
    cut = digits_run(tmp_path, name="cut", callbacks=[lambda row, run: row["epoch"] == 1], **common)
    from convclass.checkpoint import load_checkpoint
    from convclass import train
    assert load_checkpoint(cut.run_dir / "last.pt")["lookahead_state"]  # the slow weights are checkpointed
    resumed = train(resume=cut.run_dir, quiet=True)
    assert read_metrics(resumed.run_dir) == read_metrics(full.run_dir)
    a, b = load_checkpoint(full.run_dir / "last.pt"), load_checkpoint(cut.run_dir / "last.pt")
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    # and lookahead changes the result (the option is not a no-op)
    plain = digits_run(tmp_path, name="plain", **{**common, "lookahead": False})
    c = load_checkpoint(plain.run_dir / "last.pt")
    assert not all(torch.equal(a["model_state"][k], c["model_state"][k]) for k in a["model_state"])


def test_cpu_allocator_setting_applies_once_and_can_be_turned_off():
    code = "from convclass.runtime import tune_cpu_allocator as t; print(t(), t())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "CONVCLASS_DEFAULT_MALLOC": "1"}).stdout.split()
    if sys.platform.startswith("linux"):
        assert on == ["True", "True"]
    assert off == ["False", "False"]


def test_micro_batches_give_the_full_batch_update(tmp_path):
    """Without BatchNorm, chunked forward/backward (gradient accumulation) is the same optimizer step."""
    kw = dict(model="mlp", model_args={"dropout": 0.0}, optimizer="sgd", lr=0.05, epochs=1, batch_size=64)
    whole = digits_run(tmp_path, name="whole", **kw)
    parts = digits_run(tmp_path, name="parts", micro_batch=21, **kw)  # chunks 21, 21, 22 (no chunk of 1)
    from convclass.checkpoint import load_checkpoint
    a, b = (load_checkpoint(r.run_dir / "last.pt")["model_state"] for r in (whole, parts))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    ra, rb = read_metrics(whole.run_dir), read_metrics(parts.run_dir)
    assert float(ra[0]["train_loss"]) == pytest.approx(float(rb[0]["train_loss"]), rel=1e-4)


def test_micro_batch_below_two_is_a_clear_error(tmp_path):
    from convclass.errors import ConvclassError
    with pytest.raises(ConvclassError, match="--micro-batch must be at least 2"):
        digits_run(tmp_path, micro_batch=1)


def test_newton_schulz_flattens_the_spectrum():
    from convclass.training.muon import newton_schulz
    g = torch.randn(16, 40, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.logspace(0, 2, 40))
    s_in = torch.linalg.svdvals(g)
    s_out = torch.linalg.svdvals(newton_schulz(g, steps=5))
    assert s_in.max() / s_in.min() > 10
    assert s_out.min() > 0.3 and s_out.max() < 1.3  # every direction moves by about the same amount
    tall = newton_schulz(g.T, steps=5)
    assert tall.shape == (40, 16) and torch.allclose(tall, newton_schulz(g, steps=5).T, atol=1e-5)


def test_muon_groups_follow_airbench_rates():
    from convclass.models import create_model
    from convclass.training.muon import BIAS_LR_RATIO, HEAD_LR_RATIO, MuonSGD, muon_param_groups
    from convclass.training.optim import build_optimizer
    model = create_model("airbench", 10, 3, 32, widths="16,32,32")
    opt = build_optimizer(model, "muon", 0.24, 2e-6, 0.85, batch_size=2000)
    assert isinstance(opt, MuonSGD)
    groups = muon_param_groups(model, 0.24, 2e-6, 0.85, 2000)
    by_kind = {(g["kind"], g.get("anneal_epochs")): g for g in groups}
    filters = by_kind[("muon", None)]
    assert all(p.ndim == 4 for p in filters["params"]) and len(filters["params"]) == 6
    stem = by_kind[("sgd", 3)]  # the whitening bias: airbench's bias rate, annealed over 3 epochs
    assert stem["params"][0] is model.features[0].bias
    assert stem["lr"] == pytest.approx(0.24 * 2000 * BIAS_LR_RATIO)  # 106 = airbench's 0.053 on a summed loss
    head = next(g for g in groups if any(p is model.head[0].weight for p in g["params"]))
    assert head["lr"] == pytest.approx(0.24 * 2000 * HEAD_LR_RATIO)
    shifts = next(g for g in groups if g is not head and g is not stem and g["kind"] == "sgd")
    assert shifts["lr"] == pytest.approx(stem["lr"] / 64)  # shift = 8 * theta already moves 64x faster
    for g in (stem, head, shifts):  # decoupled decay per step: 2e-6 per image x 2000 images
        assert g["lr"] * g["weight_decay"] == pytest.approx(2e-6 * 2000)
    total = sum(len(g["params"]) for g in groups)
    assert total == sum(1 for p in model.parameters() if p.requires_grad)


def test_muon_step_renormalises_filters_and_learns():
    from convclass.training.optim import build_optimizer
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    opt = build_optimizer(model, "muon", 0.05, 0.0, 0.85, batch_size=32)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 2, (32,))
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    w = model[0].weight.detach()
    assert w.norm().item() == pytest.approx(8 ** 0.5, rel=0.2)  # renormalised before each step, then moved


def test_linear_schedule_anneals_the_stem_bias_early():
    from convclass.models import create_model
    from convclass.training.optim import build_optimizer
    from convclass.training.schedule import build_scheduler
    model = create_model("airbench", 10, 3, 32, widths="16,32,32")
    opt = build_optimizer(model, "muon", 0.24, 2e-6, 0.85, batch_size=100)
    sched, _ = build_scheduler(opt, "linear", epochs=8, steps_per_epoch=10, lr=0.24)
    stem = next(i for i, g in enumerate(opt.param_groups) if g.get("anneal_epochs"))
    start = [g["lr"] for g in opt.param_groups]
    for _ in range(30):  # 3 epochs
        opt.step()  # no gradients: moves nothing, keeps the scheduler's call order check quiet
        sched.step()
    assert opt.param_groups[stem]["lr"] == 0.0
    assert opt.param_groups[0]["lr"] == pytest.approx(start[0] * (1 - 30 / 80))
    for _ in range(50):
        opt.step()
        sched.step()
    assert all(g["lr"] == pytest.approx(0.0) for g in opt.param_groups)


def test_muon_run_resumes_bit_exactly(tmp_path):
    common = dict(model="airbench", model_args={"widths": "16,32,32", "scale": 1 / 32, "head_std": 1.0},
                  optimizer="muon", lr=0.24, momentum=0.85, weight_decay=2e-6, schedule="linear", epochs=3,
                  batch_size=100, micro_batch=50, augment="alt-flip-translate", label_smoothing=0.2)
    full = digits_run(tmp_path, name="full", **common)
    cut = digits_run(tmp_path, name="cut", callbacks=[lambda row, run: row["epoch"] == 1], **common)
    from convclass.checkpoint import load_checkpoint
    from convclass import train
    resumed = train(resume=cut.run_dir, quiet=True)
    assert read_metrics(resumed.run_dir) == read_metrics(full.run_dir)
    a, b = load_checkpoint(full.run_dir / "last.pt"), load_checkpoint(cut.run_dir / "last.pt")
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    assert full.test_metrics["accuracy"] > 0.5  # 10 classes; it learns


def test_chunk_bounds_cover_the_batch_without_single_image_chunks():
    from convclass.training.step import chunk_bounds
    assert chunk_bounds(10, None) == [(0, 10)]
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(9, 4) == [(0, 4), (4, 9)]  # a trailing chunk of one joins the one before
    assert chunk_bounds(2000, 125)[-1] == (1875, 2000) and len(chunk_bounds(2000, 125)) == 16
    for n, m in [(1, 4), (7, 3), (64, 21), (5, 100)]:
        b = chunk_bounds(n, m)
        assert b[0][0] == 0 and b[-1][1] == n and all(hi - lo <= max(m, 2) + 1 for lo, hi in b)
        assert all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1))


def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize("name", ["sgd", "adamw", "muon"])
def test_eager_optimizers_match_torch_and_share_its_state_dicts(name):
    from convclass.training.muon import MuonSGD, muon_param_groups
    from convclass.training.optim import build_optimizer, eager, _param_groups
    a, b = _tiny_net(), _tiny_net()
    opt_a = build_optimizer(a, name, lr=0.05, weight_decay=1e-3, batch_size=8)
    plain = {"sgd": lambda m: torch.optim.SGD(_param_groups(m, 1e-3), lr=0.05, momentum=0.9, nesterov=True),
             "adamw": lambda m: torch.optim.AdamW(_param_groups(m, 1e-3), lr=0.05),
             "muon": lambda m: MuonSGD(muon_param_groups(m, 0.05, 1e-3, 0.9, 8), lr=0.05, momentum=0.9)}[name]
    opt_b = plain(b)
    assert type(opt_a) is eager(type(opt_b)) and isinstance(opt_a, type(opt_b))
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), _tiny_net().parameters()))  # it moved
    opt_b.load_state_dict(opt_a.state_dict())  # checkpoints load either way
    opt_a.load_state_dict(opt_b.state_dict())


def test_training_start_never_imports_dynamo(tmp_path):
    """torch's optimizers import torch._dynamo (1.1 s on 2 cores) unless built through convclass."""
    code = ("import sys; from convclass import train; "
            f"train(data='digits', model='mlp', epochs=1, subset=200, device='cpu', quiet=True, report=False, "
            f"runs_dir={str(tmp_path / 'runs')!r}, data_root={str(tmp_path / 'cache')!r}); "
            "print('DYNAMO', 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "DYNAMO False" in out.stdout, out.stdout + out.stderr


def test_fast_recipe_skeleton_on_meta_never_imports_dynamo():
    """Checking a fast-recipe checkpoint builds airbench on the meta device (the final test, predict, serve);
    rescaling its head there ran std() on meta, which imports torch._dynamo (3 s of CPU)."""
    code = ("import sys, torch; from convclass.models import create_model\n"
            "with torch.device('meta'):\n"
            "    m = create_model('airbench', 10, 3, 32, scale=1 / 256, head_std=1.0)\n"
            "print('META', m.head[0].weight.is_meta, 'DYNAMO', 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "META True DYNAMO False" in out.stdout, out.stdout + out.stderr
    from convclass.models import create_model
    real = create_model("airbench", 10, 3, 32, scale=1 / 256, head_std=1.0)
    assert abs(float(real.head[0].weight.std()) - 1.0) < 1e-5  # off the meta device the head is still rescaled


def test_channel_statistics_are_kept_beside_the_decoded_pixels(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from convclass.data.prepare import channel_stats, prepare_data
    from synth import write_class_folders
    files = write_class_folders(tmp_path / "imgs", per_class=6, size=8)
    kw = dict(data_root=str(tmp_path / "cache"), val_split=0.2, test_split=0.2, verbose=False)
    a = prepare_data(str(tmp_path / "imgs"), **kw)
    stats = list((tmp_path / "cache" / "decoded").glob("*.stats.json"))
    assert len(stats) == 1 and json.loads(stats[0].read_text())["mean"] == a.mean
    assert a.mean == channel_stats(a.train.x)[0]
    stats[0].write_text(json.dumps({"mean": [0.5] * 3, "std": [0.25] * 3}))
    assert prepare_data(str(tmp_path / "imgs"), **kw).mean == [0.5] * 3  # the next run reads them
    target = next(p for p in files["red"] if str(p) in set(a.train.paths))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(target)
    os.utime(target, ns=(os.stat(target).st_atime_ns, os.stat(target).st_mtime_ns + 10**9))
    c = prepare_data(str(tmp_path / "imgs"), **kw)  # new pixels, new key: computed again
    assert c.mean == channel_stats(c.train.x)[0] and c.mean != [0.5] * 3


def test_batch_crop_equals_reflect_padding_then_crop():
    """The gather-based crop must pick exactly the window a reflect-padded copy would give, image by image."""
    import torch.nn.functional as F

    from convclass.data.augment import batch_crop
    for dtype in (torch.uint8, torch.float32):
        x = (torch.rand(40, 3, 12, 10) * 255).to(dtype)
        pad = 3
        out = batch_crop(x, pad, torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)  # the same draws, in the same order, as batch_crop makes
        dy = torch.randint(0, 2 * pad + 1, (40,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (40,), generator=g)
        padded = F.pad(x.float(), (pad,) * 4, mode="reflect").to(dtype)
        want = torch.stack([padded[i, :, dy[i]:dy[i] + 12, dx[i]:dx[i] + 10] for i in range(40)])
        assert torch.equal(out, want)
        assert not torch.equal(out, x)  # some image really moved


@pytest.mark.parametrize("env, want", [({}, "10000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None),
                                       ({"GOMP_SPINCOUNT": "77"}, "77")])
def test_importing_convclass_shortens_the_openmp_spin_unless_the_user_chose(env, want):
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = "import os, convclass, torch; print('SPIN', os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**base, **env})
    assert f"SPIN {want}" in out.stdout, out.stdout + out.stderr
    late = subprocess.run([sys.executable, "-c", "import torch, os, convclass; print('SPIN', "
                           "os.environ.get('GOMP_SPINCOUNT'))"], capture_output=True, text=True, timeout=120, env=base)
    assert "SPIN None" in late.stdout  # too late once torch has loaded libgomp: left alone, not half-applied


def test_frozen_scale_bn_keeps_the_gradient_of_a_constant_channel_bounded():
    # A channel that is exactly constant over the batch (on MNIST: GELU's 0.0 of a channel negative everywhere)
    # had its gradient multiplied by 1/sqrt(eps) = 1e6 with airbench's eps of 1e-12, and the shifts' SGD steps
    # then diverged the run.
    from convclass.models.airnet import FrozenScaleBN
    torch.manual_seed(0)
    bn = FrozenScaleBN(2).train()
    x = torch.randn(16, 2, 3, 3)
    x[:, 1] = 0.0
    x.requires_grad_(True)
    (bn(x) * torch.randn(16, 2, 3, 3)).sum().backward()
    varying, constant = x.grad[:, 0].abs().max(), x.grad[:, 1].abs().max()
    assert constant < 1000 * varying, (float(constant), float(varying))
