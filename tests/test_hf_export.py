"""`convclass export RUN --format hf` (issue 19 item 4): model.safetensors + config.json + a model card generated
from the run's files, loaded back by load_model(folder) and `convclass predict FOLDER` with the run's answers."""
from __future__ import annotations

import json
import re
import sys

import pytest
from safetensors.torch import load_file

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def folder(trained_run, tmp_path_factory):
    from convclass.export.hf import export_hf
    return export_hf(trained_run.run_dir, output=tmp_path_factory.mktemp("hf") / "colours").folder


def test_folder_holds_weights_config_and_card(folder, trained_run):
    from convclass.checkpoint import load_checkpoint
    ckpt = load_checkpoint(trained_run.run_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    weights = load_file(str(folder / "model.safetensors"))
    assert weights.keys() == ckpt["model_state"].keys()
    assert all((weights[k] == v).all() for k, v in ckpt["model_state"].items())
    config = json.loads((folder / "config.json").read_text())
    assert config["arch"] == config["architecture"] == "shallow" and config["classes"] == ckpt["classes"]
    assert config["num_classes"] == 3 and "pretrained_cfg" not in config  # timm's keys for timm models only
    assert config["preprocess"] == ckpt["preprocess"] and config["arch_args"] == ckpt["arch_args"]


def test_loaded_back_answers_as_the_run(folder, trained_run, rgb_folder, cli):
    from convclass.inference import load_model
    images = [str(p) for p in sorted(rgb_folder.rglob("*.png"))[::6]]
    run, back = load_model(trained_run.run_dir, "cpu", "fp32"), load_model(folder, "cpu", "fp32")
    assert [p.top for p in back.predict(images)] == [p.top for p in run.predict(images)]  # same weights: exact
    assert back.metrics["val_acc"] == run.metrics["val_acc"]
    r = cli("predict", folder, images[0])
    assert r.rc == 0 and images[0] in r.out, r


def test_card_is_generated_from_the_run(folder, trained_run):
    card = (folder / "README.md").read_text()
    test = json.loads((trained_run.run_dir / "test_metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: convclass\n")
    assert f"accuracy **{test['accuracy'] * 100:.2f} %**" in card and f"({test['n']} images)" in card
    for heading in ("## Data", "## Metrics", "## Training", "## Intended use", "## Limitations"):
        assert heading in card
    assert re.search(r"convclass train --data \S+colours --model shallow --epochs 3 --batch-size 16 --lr 0\.01", card)
    assert "`blue`, `green`, `red`" in card


def test_card_text_from_files_cannot_inject_markup_or_close_the_command_fence():
    from convclass.data.preprocess import Preprocess
    from convclass.export.hf_card import model_card
    hostile = ["<script>alert(1)</script>", "``` \n# owned", "a|b\n---"]
    ckpt = {"classes": hostile, "arch": "shallow\n---\nevil: 1", "metrics": {},
            "data": {"name": "<img src=x onerror=alert(1)>"},
            "config": {"data": "x\n```\n<script>y</script>", "model": "shallow", "epochs": "3; rm -rf ~"}}
    pre = Preprocess(img_size=8, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    card = model_card(ckpt, pre, None, "<b>run</b>")
    assert card.split("\n---\n")[0].count("\n") == 3  # the front matter stays 4 lines
    fence = re.search(r"^(`{3,})bash\n(.*?)\n\1$", card, re.S | re.M)
    assert fence and "\n" not in fence.group(2) and "'3; rm -rf ~'" in fence.group(2)  # one quoted line
    prose = re.sub(r"(`+).*?\1", "", card.replace(fence.group(0), ""))  # code shows text as it is
    assert "<" not in prose and not re.search(r"^# owned", card, re.M)


def test_push_needs_huggingface_hub_and_hf_format(trained_run, tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if it were not installed
    out = tmp_path / "m"
    assert_one_line_error(cli("export", trained_run.run_dir, "--format", "hf", "--output", out, "--push-to",
                              "me/colours"), "pip install huggingface_hub")
    assert (out / "model.safetensors").is_file()  # written before the push was tried
    assert_one_line_error(cli("export", trained_run.run_dir, "--push-to", "me/colours"), "--format hf")


@pytest.mark.timeout(180)
def test_a_timm_model_folder_is_timms_too(tmp_path):
    """timm.create_model("local-dir:FOLDER", pretrained=True) gives the logits convclass gives."""
    timm = pytest.importorskip("timm")
    import torch
    from convclass.checkpoint import save_checkpoint
    from convclass.export.hf import export_hf
    from convclass.inference import load_model
    from convclass.models import create_model
    args = {"num_classes": 3, "in_chans": 3, "img_size": 16}
    model = create_model("timm:resnet10t", **args)
    with torch.no_grad():  # weights of its own, so a head or body mix-up shows in the logits
        for t in model.state_dict().values():
            t.copy_(torch.rand(t.shape, generator=torch.Generator().manual_seed(t.numel())) * 0.1 + 0.01
                    if t.is_floating_point() else t)  # positive: BatchNorm variances must be
    (tmp_path / "run").mkdir()
    save_checkpoint({"arch": "timm:resnet10t", "arch_args": args, "model_state": model.state_dict(),
                     "classes": ["a", "b", "c"], "metrics": {},
                     "preprocess": {"img_size": 16, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}},
                    tmp_path / "run" / "best.pt")
    folder = export_hf(tmp_path / "run", output=tmp_path / "hf").folder
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet10t" and config["arch"] == "timm:resnet10t"
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    ours = load_model(folder, "cpu", "fp32")
    x = ours.preprocess.to_input(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    with torch.no_grad():
        assert torch.allclose(theirs(x), ours.model(x), atol=1e-5)
    assert theirs.pretrained_cfg["label_names"] == ours.classes
