"""File names are data too: a name holding a newline or an ANSI escape sequence must not fake a line of output,
recolour the terminal or move its cursor when `predict` prints it."""
from __future__ import annotations

import shutil

import pytest

ESC = "\x1b"
HOSTILE = f"red{ESC}[31mALERT{ESC}[0m\nfake.png: owned 1.000"


@pytest.mark.timeout(120)
def test_predict_escapes_control_characters_in_file_names(cli, trained_run, rgb_folder, tmp_path):
    src = next(p for p in sorted((rgb_folder / "red").iterdir()) if p.suffix == ".png")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / (HOSTILE + ".png"))
    (folder / f"broken{ESC}[2J.png").write_bytes(b"not an image")
    r = cli("predict", trained_run.run_dir, folder, "--topk", "1")
    assert r.rc == 0, r
    assert ESC not in r.out and ESC not in r.err, r
    lines = r.out.strip().splitlines()
    assert len(lines) == 1, r                      # the newline in the name did not make a second line
    assert "\\x1b[31m" in lines[0] and "\\n" in lines[0]
    assert "skipped" in r.err and "\\x1b[2J" in r.err


def test_errors_print_one_line_whatever_the_name(cli, tmp_path):
    r = cli("predict", tmp_path / f"run{ESC}[31m\nerror: fake", "x.png")
    assert r.rc == 2 and ESC not in r.err and len(r.err.strip().splitlines()) == 1, r


@pytest.mark.parametrize("task", ["single", "multi"])
def test_evaluate_tables_escape_class_names(task):
    from convclass.evaluation import format_report
    rows = [{"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 5, "ap": 0.5, "threshold": 0.5,
             "class" if task == "single" else "label": name} for name in (HOSTILE, "ok")]
    scores = {f"{k}_{a}": 0.5 for k in ("precision", "recall", "f1") for a in ("macro", "weighted", "micro")}
    m = {"split": "test", "n": 10, "accuracy": 0.5, "map": 0.5, "subset_accuracy": 0.5, "hamming_loss": 0.1,
         "classes": [HOSTILE, "ok"], "task": task, "per_class" if task == "single" else "per_label": rows, **scores}
    lines = format_report(m).splitlines()
    assert ESC not in "".join(lines) and lines[-2].lstrip().startswith("red\\x1b[31m")  # one line per class
    assert lines[-1].lstrip().startswith("ok ")


@pytest.mark.parametrize("multi", [False, True])
def test_label_issues_summary_escapes_class_names(multi):
    from convclass.inspection.label_issues import IssueReport
    from convclass.pipeline.label_issues import format_label_issues
    row = ({"label": HOSTILE, "issue": "given, likely absent", "examples": 2, "probability": 0.1} if multi else
           {"class_a": HOSTILE, "class_b": "ok", "examples": 2, "joint": 0.1})
    rep = IssueReport(issues=[], overlap=[row], n=4, multilabel=multi)
    lines = format_label_issues({"report": rep, "summary": f"4 images of {HOSTILE}", "paths": {}}).splitlines()
    assert ESC not in "".join(lines) and len(lines) == 2 and "\\x1b[31m" in lines[1]
