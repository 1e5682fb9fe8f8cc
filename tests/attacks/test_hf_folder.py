"""Hostile `export --format hf` folders: loading one reads data only. A lying or oversized config.json, weights
that are not safetensors (a pickle that runs code, garbage, a device), and code files beside them are each a
one-line refusal (or, for files convclass never reads, ignored) in bounded time, and nothing runs."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct

import pytest

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def good(trained_run, tmp_path_factory):
    from convclass.export.hf import export_hf
    return export_hf(trained_run.run_dir, output=tmp_path_factory.mktemp("hf") / "good").folder


class _Runs:
    """Unpickling this creates `path`: the marker that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _copy(good, tmp_path):
    folder = shutil.copytree(good, tmp_path / "model")
    return folder, json.loads((folder / "config.json").read_text())


def _set_config(folder, config):
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))


CONFIG_LIES = [
    (lambda c: [c], "not a mapping"),
    (lambda c: {**c, "format": "convclass-hf-v9"}, "newer convclass"),
    (lambda c: {k: v for k, v in c.items() if k != "format"}, "no format tag"),
    (lambda c: {k: v for k, v in c.items() if k != "arch"}, "'arch'"),
    (lambda c: {**c, "arch": ["os.system"]}, "'arch'"),
    (lambda c: {**c, "arch": "no_such_model"}, "no_such_model"),
    (lambda c: {**c, "num_classes": 4}, "num_classes 4"),
    (lambda c: {**c, "classes": ["a", "a", "b"]}, "classes"),
    (lambda c: {**c, "preprocess": {**c["preprocess"], "img_size": 10 ** 9}}, "img_size"),
    (lambda c: {**c, "preprocess": {**c["preprocess"], "std": [0, 0, 0]}}, "std"),
    (lambda c: {**c, "arch_args": {**c["arch_args"], "filters": "/etc/passwd"}}, "arch_args"),
    (lambda c: {**c, "arch_args": {**c["arch_args"], "num_classes": 10 ** 6}}, "num_classes"),
    (lambda c: {**c, "metrics": {f"m{i}": 1.0 for i in range(1000)}}, "metrics"),
    (lambda c: {**c, "metrics": "x"}, "'metrics'"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lie, says", CONFIG_LIES, ids=range(len(CONFIG_LIES)))
def test_lying_config_is_one_line(good, tmp_path, cli, lie, says):
    folder, config = _copy(good, tmp_path)
    _set_config(folder, lie(config))
    assert_one_line_error(cli("predict", folder, folder / "README.md"), says)


@pytest.mark.timeout(60)
def test_oversized_and_deep_config_are_refused_quickly(good, tmp_path, cli):
    folder, config = _copy(good, tmp_path)
    _set_config(folder, "[" * 200_000 + "]" * 200_000)
    assert_one_line_error(cli("predict", folder, "x.png"), "not valid JSON")
    with open(folder / "config.json", "w") as f:  # 17 MB of valid JSON: never parsed
        f.write('{"pad": "' + "x" * (17 * 2**20) + '"}')
    assert_one_line_error(cli("predict", folder, "x.png"), "limit")


@pytest.mark.timeout(60)
def test_config_that_is_a_fifo_does_not_hang(good, tmp_path, cli):
    folder, _ = _copy(good, tmp_path)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    assert_one_line_error(cli("predict", folder, "x.png"), "FIFO")


@pytest.mark.timeout(60)
def test_pickle_posing_as_safetensors_never_runs(good, tmp_path, cli):
    folder, _ = _copy(good, tmp_path)
    marker = tmp_path / "ran"
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Runs(str(marker))))
    assert_one_line_error(cli("predict", folder, "x.png"), "safetensors")
    assert not marker.exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("weights, says", [
    (b"", "safetensors"),
    (struct.pack("<Q", 2 ** 62) + b"{}", "safetensors"),  # a header length past the file
    (struct.pack("<Q", 60) + json.dumps({"w": {"dtype": "F32", "shape": [10 ** 6, 10 ** 6],
                                               "data_offsets": [0, 4 * 10 ** 12]}}).encode()[:60], "safetensors"),
])
def test_malformed_weights_are_one_line(good, tmp_path, cli, weights, says):
    folder, _ = _copy(good, tmp_path)
    (folder / "model.safetensors").write_bytes(weights)
    assert_one_line_error(cli("predict", folder, "x.png"), says)


@pytest.mark.timeout(60)
def test_weights_of_another_shape_or_a_device_are_refused(good, tmp_path, cli):
    import torch
    from safetensors.torch import load_file, save_file
    folder, _ = _copy(good, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    save_file({**state, "extra": torch.zeros(2)}, str(folder / "model.safetensors"))
    assert_one_line_error(cli("predict", folder, "x.png"), "unexpected extra")
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").symlink_to("/dev/zero")
    assert_one_line_error(cli("predict", folder, "x.png"), "not a regular file")


@pytest.mark.timeout(60)
def test_code_beside_the_weights_is_never_run(good, tmp_path, cli, rgb_folder):
    folder, config = _copy(good, tmp_path)
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w')\n"
    for name in ("modeling.py", "__init__.py", "custom.py"):
        (folder / name).write_text(code)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Runs(str(marker))))
    _set_config(folder, {**config, "auto_map": {"AutoModel": "modeling.Net"}, "trust_remote_code": True})
    image = next(rgb_folder.rglob("*.png"))
    r = cli("predict", folder, image)
    assert r.rc == 0, r
    assert not marker.exists()
