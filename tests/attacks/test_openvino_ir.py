"""Hostile OpenVINO IR files (model.openvino.xml + .bin), built at test time from a real export: each is a clear
one-line error (or, for XML entities, a plain load of the real graph) in bounded time, with no stray files."""
from __future__ import annotations

import re
import shutil
import time

import pytest

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def ir(trained_run, tmp_path_factory):
    from convclass.export import export_model
    out = tmp_path_factory.mktemp("ir") / "model.openvino.xml"
    return export_model(trained_run.run_dir, "openvino", output=out).path


def _variant(ir, tmp_path, name: str, xml: str):
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    shutil.copy(ir.with_suffix(".bin"), path.with_suffix(".bin"))
    return path


@pytest.mark.timeout(180)
def test_lying_weights_and_shapes_are_one_line_errors(cli, ir, tmp_path):
    xml = ir.read_text()
    cases = {  # name -> (xml, what the error says)
        "size-past-bin": (re.sub(r'size="\d+"', 'size="999999999999"', xml, count=1), "incorrect weights"),
        "offset-past-bin": (re.sub(r'offset="\d+"', 'offset="999999999999"', xml, count=1), "incorrect weights"),
        "shape-bomb": (re.sub(r'shape="[^"]*"', 'shape="100000,100000,100000"', xml, count=1), "do not match"),
        "truncated": (xml[:len(xml) // 2], "cannot load OpenVINO model"),
    }
    for name, (text, needle) in cases.items():
        path = _variant(ir, tmp_path, name, text)
        t0 = time.perf_counter()
        assert_one_line_error(cli("predict", path, str(path)), "OpenVINO model", needle)
        assert time.perf_counter() - t0 < 30, name
    missing = _variant(ir, tmp_path, "no-bin", xml)
    missing.with_suffix(".bin").unlink()
    assert_one_line_error(cli("predict", missing, str(missing)), "with its .bin beside it")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bin"] * 4 + [".xml"] * 5  # nothing written


@pytest.mark.timeout(120)
def test_xml_entity_bomb_is_not_expanded(ir, tmp_path):
    """A billion-laughs DOCTYPE (10^10 bytes if expanded) before the real graph: the parser does not expand it."""
    from convclass.export import load_predictor
    levels = ['<!ENTITY l0 "lollollollol">'] + [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
    body = ir.read_text().split("?>", 1)[1]
    path = _variant(ir, tmp_path, "bomb", f'<?xml version="1.0"?><!DOCTYPE net [{"".join(levels)}]>{body}')
    t0 = time.perf_counter()
    model = load_predictor(path)
    assert time.perf_counter() - t0 < 60 and model.runtime == "openvino"
