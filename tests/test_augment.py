"""The augmentation contract: aug(x_uint8, idx, epoch, generator) changes the images, keeps uint8 and shape, draws
only from the generator it is given, and (flip-crop, alt-flip-translate, mixup, cutmix) gives the same images as
the global-RNG code it replaced, so seeded runs train exactly as before."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from convclass.data import AUGMENTATIONS, Augmentation, batch_stream, build_augment, mix_batch

AUGS = [a for a in AUGMENTATIONS if a != "none"]


def _images(n=32, channels=3, size=16, seed=1):
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    x[..., 0], x[..., -1] = 0, 255  # no image equals its mirror
    return x


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", AUGS)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_augmentation_changes_its_input_keeps_uint8_shape_and_is_seeded(name, channels):
    x, idx = _images(channels=channels), torch.arange(100, 132)
    aug = build_augment(name, 16, channels)
    assert isinstance(aug, Augmentation)
    y1 = aug(x.clone(), idx, 1, _gen(0))
    assert y1.dtype == torch.uint8 and y1.shape == x.shape
    changed = sum(not torch.equal(a, b) for a, b in zip(x, y1))
    assert changed >= len(x) // 2, f"{name} left {len(x) - changed} of {len(x)} images as they were"
    assert torch.equal(aug(x.clone(), idx, 1, _gen(0)), y1), "same generator seed, same images (resume needs it)"
    assert not torch.equal(aug(x.clone(), idx, 1, _gen(1)), y1), "another seed must give other images"


def test_none_is_no_augmentation():
    assert build_augment("none", 16, 3) is None


@pytest.mark.parametrize("name", AUGS)
def test_augmentations_draw_only_from_their_generator(name):
    aug, x = build_augment(name, 16, 3), _images(n=8)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    aug(x, torch.arange(8), 0, _gen(0))
    mix_batch(x.float(), torch.arange(8) % 3, 3, 0.4, 1.0, _gen(0))
    list(batch_stream(x, [torch.arange(4), torch.arange(4, 8)], aug, 0, 0, _gen(0)))
    assert torch.equal(torch.get_rng_state(), before)


def test_worker_batches_repeat_with_the_seed_and_match_in_process_ones():
    x, aug = _images(n=40), build_augment("randaugment", 16, 3)
    batches = list(torch.randperm(40, generator=_gen(0)).split(8))

    def run(workers, seed=5):
        torch.manual_seed(99)  # the global state must not matter
        return list(batch_stream(x, batches, aug, 0, workers, _gen(seed)))

    a = run(2)
    assert [t.shape for t in a] == [(8, 3, 16, 16)] * 5 and all(t.dtype == torch.uint8 for t in a)
    for other in (run(2), run(0)):  # same seed: same images, in workers or not
        assert all(torch.equal(p, q) for p, q in zip(a, other))
    assert not all(torch.equal(p, q) for p, q in zip(a, run(2, seed=6)))


# --- equivalence with the code this replaced ------------------------------------------------------------------
# The global-RNG versions as they were (commit 00803a6), seeded the way the trainer seeds each epoch. The new
# code must draw the same numbers from a generator, so `--recipe fast` trains exactly as before.

def _old_crop(x, pad):
    b, _, h, w = x.shape
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(x.dtype)
    dy, dx = torch.randint(0, 2 * pad + 1, (b,)), torch.randint(0, 2 * pad + 1, (b,))
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def _old_flip_crop(x, idx, epoch, pad):
    x = _old_crop(x, pad)
    return torch.where((torch.rand(x.shape[0]) < 0.5)[:, None, None, None], x.flip(3), x)


def _old_alt_flip_translate(x, idx, epoch, pad):
    x = _old_crop(x, pad)
    mirror = ((((idx * 2654435761) >> 16) & 1) ^ (epoch % 2)).bool()
    return torch.where(mirror[:, None, None, None], x.flip(3), x)


def _old_mix_batch(x, y, k, mixup, cutmix):
    use_cut = cutmix > 0 and (mixup <= 0 or torch.rand(()) < 0.5)
    lam = float(torch.distributions.Beta(*[cutmix if use_cut else mixup] * 2).sample())
    perm = torch.randperm(len(x))
    if use_cut:  # a box of about (1 - lam) of the area, centred on a random pixel, clipped to the image
        h, w = x.shape[2:]
        half_h, half_w = int(h * (1 - lam) ** 0.5) // 2, int(w * (1 - lam) ** 0.5) // 2
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        box = torch.zeros(h, w, dtype=torch.bool)
        box[max(cy - half_h, 0):cy + half_h, max(cx - half_w, 0):cx + half_w] = True
        x, lam = torch.where(box, x[perm], x), 1 - int(box.sum()) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    target = F.one_hot(y, k).float()
    return x, lam * target + (1 - lam) * target[perm]


@pytest.mark.parametrize("name,old", [("flip-crop", _old_flip_crop), ("alt-flip-translate", _old_alt_flip_translate)])
@pytest.mark.parametrize("size", [16, 32])
def test_batch_augmentations_and_mixing_match_the_global_rng_code_they_replaced(name, old, size):
    x, y = _images(n=64, size=size), torch.arange(64) % 10
    batches = list(torch.randperm(64, generator=_gen(3)).split(16))
    aug, pad = build_augment(name, size, 3), max(1, size // (8 if name == "flip-crop" else 16))
    for epoch, mixup, cutmix in [(0, 0.0, 0.0), (1, 0.4, 0.0), (2, 0.0, 1.0), (3, 0.2, 1.0), (4, 0.4, 1.0)]:
        seed = 1000 + epoch  # the trainer: epoch_seed(seed, epoch) + 1 + rank
        torch.manual_seed(seed)
        want = []
        for idx in batches:  # the old loop: augment, then mix, all from the global generator
            xb = old(x[idx], idx, epoch, pad)
            want.append(_old_mix_batch(xb.float(), y[idx], 10, mixup, cutmix) if mixup or cutmix else (xb,))
        for g in (_gen(seed), None):  # an explicit generator, and the deprecated global one, reseeded
            if g is None:
                torch.manual_seed(seed)
            for w, (idx, xb) in zip(want, zip(batches, batch_stream(x, batches, aug, epoch, 0, g))):
                got = mix_batch(xb.float(), y[idx], 10, mixup, cutmix, g) if mixup or cutmix else (xb,)
                assert all(torch.equal(a, b) for a, b in zip(w, got)), (epoch, mixup, cutmix, g)


def test_rrc_flip_crops_within_the_image_at_torchvisions_area_and_aspect_and_flips_half():
    from convclass.data.augment import RRC_RATIO, RRC_SCALE, RandomResizedCropFlip, rrc_boxes
    top, left, h, w = rrc_boxes(4000, 256, 256, _gen(0))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 256).all() and (left + w <= 256).all()
    area, aspect = (h * w).float() / 256 ** 2, w.float() / h
    assert area.min() >= RRC_SCALE[0] - 0.01 and area.max() <= RRC_SCALE[1]
    assert aspect.min() >= RRC_RATIO[0] - 0.01 and aspect.max() <= RRC_RATIO[1] + 0.01
    assert area.std() > 0.1 and aspect.std() > 0.05, "crops of many sizes and shapes, not one"
    assert len(set(top.tolist())) > 100 and len(set(left.tolist())) > 100
    # the crop pinned to the whole image: each image comes back as itself or its mirror, about half mirrored
    x = _images(n=64, size=16)
    y = RandomResizedCropFlip([16], scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, torch.arange(64), 0, _gen(0))
    mirrored = [torch.equal(b, a.flip(-1)) for a, b in zip(x, y)]
    assert all(m or torch.equal(a, b) for m, a, b in zip(mirrored, x, y))
    assert 20 <= sum(mirrored) <= 44


def test_rrc_flip_makes_each_epochs_size_from_the_stored_image():
    x, idx = _images(n=8, size=40), torch.arange(8)
    lines = []
    aug = build_augment("rrc-flip", 40, 3, sizes=[32, 24, 32], log=lines.append)
    for epoch, size in [(0, 32), (1, 24), (2, 32), (7, 32)]:  # epochs past the schedule keep its last size
        y = aug(x, idx, epoch, _gen(epoch))
        assert y.dtype == torch.uint8 and y.shape == (8, 3, size, size)
        assert torch.equal(aug(x, idx, epoch, _gen(epoch)), y)
    assert lines == ["epoch 1: training at 32x32 px (progressive resizing up to 32 px)",
                     "epoch 2: training at 24x24 px (progressive resizing up to 32 px)",
                     "epoch 3: training at 32x32 px (progressive resizing up to 32 px)"]
    flat = torch.full((2, 3, 40, 40), 77, dtype=torch.uint8)  # resizing a flat image keeps its value exactly
    assert (aug(flat, torch.arange(2), 1, _gen(0)) == 77).all()
