"""The CLI's rough edges (issue 19 item 8): a fast `convclass models` whose table is the registry's, every model in
the README, `compare` keeping earlier figures, `cv --name X` naming its folder X."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(60)
def test_models_lists_without_importing_torch():
    code = ("import sys; from convclass.cli import main; rc = main(['models']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^efficientnet_lite0 +3,383,818 ", r.stdout, re.M), r.stdout


def test_models_table_is_the_registry():
    """Each row's count is the model's, built on the meta device (no memory) as the header says."""
    import torch
    from convclass.commands.models import CATALOG
    from convclass.models import count_parameters, create_model, list_models, model_entry
    want = []
    for name in list_models():
        with torch.device("meta"):
            m = create_model(name, num_classes=10, in_chans=3, img_size=32)
        want.append((name, count_parameters(m), model_entry(name).description))
    assert CATALOG == want, "convclass/commands/models.py CATALOG should be:\n" + "\n".join(map(repr, want))


def test_no_description_quotes_another_parameter_count():
    """"(4.7M)" beside 3,383,818 parameters: a figure in a description must be the count shown, to 5 %."""
    from convclass.commands.models import CATALOG
    for name, params, description in CATALOG:
        for figure in re.findall(r"\((\d+(?:\.\d+)?)M\)", description):
            assert abs(float(figure) * 1e6 - params) <= 0.05 * params, (name, figure, params)


def test_readme_model_table_has_every_model():
    from convclass.commands.models import CATALOG
    text = (REPO / "README.md").read_text()
    lines = text[text.index("### Models"):].splitlines()[1:]
    rows = [ln for ln in lines[:next(i for i, ln in enumerate(lines) if not ln.startswith("|"))]][2:]
    named = set(re.findall(r"`([a-z0-9_]+)`", "\n".join(ln.split("|")[1] for ln in rows)))
    assert {name for name, _, _ in CATALOG} <= named, {name for name, _, _ in CATALOG} - named


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.pt", "events.*", "export"))
    return dest


def test_compare_keeps_each_comparison(cli, trained_run, tmp_path):
    a, b, c = (_copy_run(trained_run.run_dir, tmp_path / n) for n in ("a", "b", "c"))
    assert cli("compare", a, b).rc == 0
    first = tmp_path / "compare-a-vs-b.png"
    before = first.read_bytes()
    r = cli("compare", a, c)
    assert r.rc == 0, r
    assert (tmp_path / "compare-a-vs-c.png").is_file() and "compare-a-vs-c.png" in r.out
    assert first.read_bytes() == before and not (tmp_path / "compare.png").exists()


@pytest.mark.timeout(120)
def test_cv_name_is_the_folder_name(cli, rgb_folder, tmp_path):
    r = cli("cv", "--folds", "2", "--data", rgb_folder, "--model", "shallow", "--epochs", "1", "--device", "cpu",
            "--runs-dir", tmp_path, "--data-root", tmp_path / "cache", "--name", "mine", "--quiet")
    assert r.rc == 0, r
    assert (tmp_path / "mine" / "cv.json").is_file() and not (tmp_path / "mine-cv").exists()
