"""The streaming path (data/stream.py) and WebDataset shards (data/shards.py): the same pixels and weights as the
decode cache, bit-exact resume with decode-time random-resized crops, the switch when the cache does not fit, and
training from shards written by `convclass shard`, alone and under 2-process DDP."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from convclass import train
from convclass.checkpoint import load_checkpoint
from convclass.data import decode, prepare_data
from convclass.data.shards import shard_plan
from convclass.data.stream import StreamImages, train_batches
from convclass.data.augment import RandomResizedCropFlip
from convclass.errors import ConvclassError

RUN = dict(model="shallow", batch_size=8, device="cpu", report=False, quiet=True, threads=1, seed=3)


def _weights(run_dir) -> dict:
    return load_checkpoint(Path(run_dir) / "last.pt")["model_state"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(120)
def test_streaming_trains_the_weights_the_cache_trains(tmp_path, rgb_folder):
    """Batch order, pixels, statistics and batch augmentation are the cache's: the weights match bit for bit."""
    common = dict(RUN, data=str(rgb_folder), epochs=2, augment="flip-crop", runs_dir=str(tmp_path),
                  data_root=str(tmp_path / "cache"))
    streamed = train(**common, name="s", cache="never", workers=1)
    assert not list(tmp_path.glob("cache/decoded/*.npy")), "streaming writes no decode cache"
    cached = train(**common, name="c", cache="always")
    assert _same(_weights(streamed.run_dir), _weights(cached.run_dir))


@pytest.mark.timeout(120)
def test_stream_resume_is_bit_exact_with_decode_time_crops(tmp_path, rgb_folder):
    """rrc-flip crops each photo as it is decoded in a worker; 1 epoch + resume equals 2 epochs straight."""
    common = dict(RUN, data=str(rgb_folder), augment="rrc-flip", img_size=16, cache="never", workers=1,
                  runs_dir=str(tmp_path), data_root=str(tmp_path / "cache"))
    straight = train(**common, epochs=2, name="straight")
    cut = train(**common, epochs=1, name="cut")
    resumed = train(resume=cut.run_dir, epochs=2)
    assert _same(_weights(straight.run_dir), _weights(resumed.run_dir))


def test_decode_time_draws_depend_on_seed_epoch_and_index_only(rgb_folder):
    paths = sorted(str(p) for p in rgb_folder.rglob("*.png"))[:6]
    images, aug = StreamImages(paths, 16, 3), RandomResizedCropFlip([12])
    one = images.decode([4, 1, 2], (aug, 12, 7, 0))
    assert one.shape == (3, 3, 12, 12)
    assert torch.equal(one[1:2], images.decode([1], (aug, 12, 7, 0)))  # not its place in the batch
    assert not torch.equal(one, images.decode([4, 1, 2], (aug, 12, 7, 1)))  # another epoch, other crops
    batches = [torch.tensor([4, 1]), torch.tensor([2, 0])]
    in_process = list(train_batches(images, batches, aug, 0, 7, 0, None))
    in_workers = list(train_batches(images, batches, aug, 0, 7, 2, None))
    assert all(torch.equal(a, b) for a, b in zip(in_process, in_workers))


def test_auto_streams_when_the_cache_would_not_fit(tmp_path, rgb_folder, monkeypatch):
    monkeypatch.setattr(decode, "RESERVE", 2**62)  # no disk has room for the cache now
    with pytest.raises(ConvclassError, match="--cache auto or never"):
        prepare_data(str(rgb_folder), data_root=str(tmp_path), verbose=False, cache="always")
    data = prepare_data(str(rgb_folder), data_root=str(tmp_path), verbose=False, cache="auto")
    assert isinstance(data.train.x, StreamImages) and data.train.x.shape == (len(data.train), 3, 16, 16)
    assert any("do not fit" in n for n in data.notes)
    assert not (tmp_path / "decoded").exists() or not list((tmp_path / "decoded").iterdir())


def test_shard_plan_gives_each_rank_its_own_shards_and_the_same_steps():
    paths = [f"s-{k}.tar::{i:03d}.png" for k in range(5) for i in range(10)]
    sizes = [8] * 6 + [2]
    ranks = [shard_plan(paths, sizes, seed=1, epoch=0, rank=r, world=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(sizes)
    shards = [{paths[i].split("::")[0] for b in plan for i in b.tolist()} for plan in ranks]
    assert not shards[0] & shards[1], "a shard is read by one rank only"
    assert [len(b) for b in ranks[0]] == [4] * 6 + [1]
    assert shard_plan(paths, sizes, 1, 0, 0, 2)[0].tolist() == ranks[0][0].tolist()  # seeded
    firsts = {tuple(shard_plan(paths, sizes, 1, e, 0, 2)[0].tolist()) for e in range(6)}
    assert len(firsts) > 1, "the shards are reshuffled every epoch"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The split folder below written as shards by `convclass shard` (3 training shards of 10 images)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from synth import write_class_folders
    base = tmp_path_factory.mktemp("shards")
    write_class_folders(base / "src" / "train", per_class=10, size=16)
    write_class_folders(base / "src" / "test", per_class=2, size=16, seed=1)
    (base / "src" / "class_names.json").write_text('{"blue": "blue sky", "green": "grass", "red": "fire"}')
    from convclass.cli import main
    assert main(["shard", str(base / "src"), str(base / "out"), "--shard-size", "10"]) == 0
    return base / "out"


def test_shard_command_writes_webdataset_shards_and_an_index(shards):
    import webdataset as wds
    index = json.loads((shards / "shards.json").read_text())
    assert index["classes"] == ["blue", "green", "red"] and index["class_names"][0] == "blue sky"
    assert index["splits"] == {"train": ["train-0000.tar", "train-0001.tar", "train-0002.tar"],
                               "test": ["test-0000.tar"]}
    samples = list(wds.WebDataset(str(shards / "train-0000.tar"), shardshuffle=False))
    assert len(samples) == 10 and all(set(s) >= {"__key__", "png", "cls"} for s in samples)


@pytest.mark.timeout(120)
def test_training_streams_from_shards(tmp_path, shards, cli):
    pattern = str(shards / "train-{0000..0002}.tar")
    res = cli("train", "--data", pattern, "--model", "shallow", "--epochs", "1", "--batch-size", "8", "--threads",
              "1", "--no-report", "--runs-dir", tmp_path, "--data-root", tmp_path / "cache", "--name", "s")
    assert res.rc == 0, res.err
    assert "WebDataset shards" in res.out and "test 6 images" in res.out
    ckpt = load_checkpoint(tmp_path / "s" / "best.pt")
    assert ckpt["classes"] == ["blue", "green", "red"]


@pytest.mark.slow  # ~110 s on 2 busy cores (two ranks, each importing torch and starting decode workers)
@pytest.mark.timeout(400)
def test_two_process_ddp_on_shards(tmp_path, shards):
    """Each rank streams its own shards; the replicas stay in sync."""
    from test_distributed import _train_two_ranks
    run = _train_two_ranks(tmp_path, "--data", str(shards / "train-{0000..0002}.tar"), "--model", "shallow",
                           "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-report", "--quiet",
                           "--data-root", tmp_path / "cache")
    ranks = json.loads((run / "ranks.json").read_text())
    assert ranks["world"] == 2 and len(set(ranks["param_abs_sums"])) == 1
