"""Class display names (data/names.py): read from classes.txt, words.txt or a JSON mapping, stored in the
checkpoint beside the class keys, shown by predict, the report and the web page's JSON."""
from __future__ import annotations

import asyncio
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error

from convclass.data import find_data
from convclass.data.names import read_class_names
from convclass.data.sources import DataOptions
from convclass.errors import ConvclassError
from http_client import multipart
from synth import write_class_folders

WNIDS = {"n01440764": "tench", "n01443537": "goldfish"}


@pytest.mark.parametrize("text, name, classes, want", [
    ("airplane\nautomobile\nbird\n", "classes.txt", ["0", "1", "2"], ["airplane", "automobile", "bird"]),
    # line k names integer label k, whatever order the keys sort in
    ("".join(f"name{i}\n" for i in range(11)), "classes.txt", ["0", "1", "10", "2"],
     ["name0", "name1", "name10", "name2"]),
    ("16 priority road\n1 speed limit 30\n", "classes.txt", ["00001", "00016"], ["speed limit 30", "priority road"]),
    ("n00001\tentity\nn01440764\ttench, Tinca tinca\nn01443537\tgoldfish, Carassius auratus\n", "words.txt",
     list(WNIDS), ["tench", "goldfish"]),
    (json.dumps({"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}), "imagenet_class_index.json",
     list(WNIDS), ["tench", "goldfish"]),
    (json.dumps({"n01443537": "goldfish"}), "class_names.json", list(WNIDS), ["n01440764", "goldfish"]),
])
def test_name_files(tmp_path, text, name, classes, want):
    (tmp_path / name).write_text(text)
    assert read_class_names(tmp_path / name, classes) == want


def test_a_file_that_does_not_fit(tmp_path):
    write_class_folders(tmp_path / "d", per_class=1, size=8, classes=["cat", "dog"])
    (tmp_path / "d" / "classes.txt").write_text("one\ntwo\nthree\n")
    spec = find_data(str(tmp_path / "d"))
    assert spec.class_names is None and any("left out classes.txt" in n for n in spec.notes)
    with pytest.raises(ConvclassError) as e:
        find_data(str(tmp_path / "d"), options=DataOptions(class_names=str(tmp_path / "d" / "classes.txt")))
    assert "\n" not in str(e.value) and "names none of the 2 classes" in str(e.value)
    (tmp_path / "names.json").write_text('{"cat": "Felis catus"')
    with pytest.raises(ConvclassError, match="not valid JSON"):
        find_data(str(tmp_path / "d"), options=DataOptions(class_names=str(tmp_path / "names.json")))


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """A 1-epoch run on a TSV of wnid labels with class_names.json beside it, trained from the command line."""
    from convclass.cli import main
    base = tmp_path_factory.mktemp("named")
    files = write_class_folders(base / "src", per_class=4, size=8, classes=list(WNIDS))
    rows = ["image_id\tcategory"]
    for c, paths in files.items():
        for p in paths:
            (base / "data" / "images").mkdir(parents=True, exist_ok=True)
            shutil.copy(p, base / "data" / "images" / p.name)
            rows.append(f"{p.stem}\t{c}")
    (base / "data" / "labels.tsv").write_text("\n".join(rows) + "\n")
    (base / "data" / "class_names.json").write_text(json.dumps(WNIDS))
    rc = main(["train", "--data", str(base / "data" / "labels.tsv"), "--model", "shallow", "--epochs", "1",
               "--batch-size", "8", "--device", "cpu", "--no-report", "--quiet", "--name", "named",
               "--runs-dir", str(base / "runs"), "--data-root", str(base / "cache"), "--test-split", "0.25"])
    assert rc == 0
    return base / "runs" / "named", files


def test_checkpoint_keeps_names_beside_the_keys(named_run):
    from convclass.inference import load_model
    run, _ = named_run
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["classes"] == list(WNIDS) and ckpt["class_names"] == list(WNIDS.values())
    lm = load_model(run, device="cpu")
    assert lm.classes == list(WNIDS) and lm.class_names == list(WNIDS.values())


@pytest.mark.parametrize("bad", [["tench"], ["tench", 7], ["tench", ""]], ids=["short", "number", "empty"])
def test_checkpoint_with_bad_names_is_refused(named_run, tmp_path, bad):
    from convclass.inference import load_model
    run, _ = named_run
    ckpt = torch.load(run / "best.pt", weights_only=True)
    torch.save({**ckpt, "class_names": bad}, tmp_path / "bad.pt")
    with pytest.raises(ConvclassError) as e:
        load_model(tmp_path / "bad.pt", device="cpu")
    assert "\n" not in str(e.value) and "class_names" in str(e.value)


def test_predict_shows_display_names(cli, named_run, tmp_path):
    run, files = named_run
    image = files["n01443537"][0]
    res = cli("predict", run, image, "--topk", "2", "--device", "cpu", "--output", tmp_path / "p.csv")
    assert res.rc == 0, res
    shown = res.out.splitlines()[0].rsplit(": ", 1)[1]
    assert "goldfish" in shown and "tench" in shown and "n0144" not in shown
    with open(tmp_path / "p.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert {row["class1"], row["class2"]} == set(WNIDS) and row["name1"] == WNIDS[row["class1"]]
    res = cli("predict", run, image, "--device", "cpu", "--output", tmp_path / "p.json")
    got = json.loads((tmp_path / "p.json").read_text())[0]
    assert got["names"] == [WNIDS[c] for c, _ in got["top"]]


def test_a_names_file_that_does_not_fit_is_a_one_line_cli_error(cli, named_run, tmp_path):
    run, _ = named_run
    (tmp_path / "n.txt").write_text("a\nb\nc\n")
    res = cli("train", "--data", run.parent.parent / "data" / "labels.tsv", "--class-names", tmp_path / "n.txt",
              "--epochs", "1", "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache")
    assert_one_line_error(res, "names none of the 2 classes")


def _asgi_post(app, body: bytes, ctype: str) -> tuple[int, dict]:
    """POST /api/predict to the app in this process (no server, no HTTP client library)."""
    sent, out = [], []

    async def receive():
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message):
        out.append(message)

    async def call():
        await app.state.batcher.start()
        try:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"",
                     "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
                     "headers": [(b"host", b"127.0.0.1"), (b"content-type", ctype.encode()),
                                 (b"content-length", str(len(body)).encode())]}
            await asyncio.wait_for(app(scope, receive, send), 60)
        finally:
            await app.state.batcher.stop()
    asyncio.run(call())
    return out[0]["status"], json.loads(b"".join(m.get("body", b"") for m in out[1:]))


@pytest.mark.timeout(120)
def test_web_page_json_carries_display_names(named_run):
    from convclass.inference import load_model
    from convclass.serve.app import make_app, model_info
    from convclass.serve.limits import ServeLimits
    run, files = named_run
    lm = load_model(run, device="cpu")
    assert model_info(lm, ServeLimits())["class_names"] == list(WNIDS.values())
    body, ctype = multipart([("image", "fish.png", files["n01440764"][0].read_bytes())])
    status, got = _asgi_post(make_app(lm), body, ctype)
    assert status == 200, got
    assert len(got["predictions"][0]["top"]) == 2 and all(t["name"] == WNIDS[t["class"]] for t in got["predictions"][0]["top"])


def test_report_labels_use_display_names(tmp_path):
    from convclass.reporting import draw_figures, load_predictions, save_predictions
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    save_predictions(tmp_path, y, probs, list(WNIDS), class_names=list(WNIDS.values()))
    assert load_predictions(tmp_path)["class_names"] == list(WNIDS.values())
    summary = draw_figures(tmp_path)
    assert [r["class"] for r in summary["metrics"]["per_class"]] == ["tench", "goldfish"]
    assert summary["most_confused"][0]["true"] == "goldfish"
