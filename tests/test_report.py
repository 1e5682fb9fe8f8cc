"""Run figures, report.html (also opened in headless Chromium), calibration and confusion helpers."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SECTIONS = ["result", "metrics", "confusion", "mistakes", "calibration", "data", "settings"]  # the result first


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from convclass import train
    base = tmp_path_factory.mktemp("report")
    return train(data="digits", model="shallow", epochs=2, lr=0.01, device="cpu", runs_dir=str(base / "runs"),
                 data_root=str(base / "cache"), name="digits")


def test_training_writes_figures_and_report(digits_run, capsys):
    from convclass.reporting import FIGURES
    run = digits_run.run_dir
    for name in FIGURES:
        png = run / "figures" / name
        assert png.exists(), name
        w, h = Image.open(png).size
        assert 200 < w < 4000 and 150 < h < 6000, (name, w, h)
    assert (run / "predictions.npz").exists() and (run / "data_summary.json").exists()
    doc = (run / "report.html").read_text()
    assert "http://" not in doc and "https://" not in doc and "<script" not in doc  # self-contained, offline
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', doc)) == len(FIGURES)


def test_predictions_hold_no_images(digits_run):
    with np.load(digits_run.run_dir / "predictions.npz") as z:
        assert set(z.files) == {"y_true", "probs", "classes", "split", "paths"}
        assert z["probs"].shape == (digits_run.test_metrics["n"], 10)


def test_report_command_rebuilds(digits_run, cli):
    run = digits_run.run_dir
    (run / "report.html").unlink()
    (run / "figures" / "reliability.png").unlink()
    r = cli("report", run)
    assert r.rc == 0, r
    assert (run / "report.html").exists() and (run / "figures" / "reliability.png").exists()
    # the image grids need pixels: digits has no files, so the ones drawn at training time are kept
    assert (run / "figures" / "confident_wrong.png").exists()
    assert_one_line_error(cli("report", run / "nope"), "not a folder")


def test_evaluate_writes_its_own_report(digits_run, cli):
    r = cli("evaluate", digits_run.run_dir, "--split", "val", "--device", "cpu")
    assert r.rc == 0, r
    out = digits_run.run_dir / "eval-val"
    doc = (out / "report.html").read_text()
    assert (out / "figures" / "confusion_normalized.png").exists()
    # named after the run it scored, not after its folder (it said "convclass report: eval-val")
    assert "<h1>digits: val split (convclass evaluate)</h1>" in doc and "eval-val" not in doc


def test_train_prints_data_summary(tmp_path, cli, rgb_folder):
    r = cli("train", "--data", rgb_folder, "--model", "shallow", "--epochs", "1", "--device", "cpu",
            "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "cache", "--no-report")
    assert r.rc == 0, r
    assert "class counts (train)" in r.out and "imbalance ratio 1.00" in r.out
    # balanced: one count, no class named as both the smallest and the largest (was "smallest 12 (blue), largest
    # 12 (blue)")
    assert "every class" in r.out and "smallest" not in r.out
    assert not (tmp_path / "runs" / "colours" / "report.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(digits_run, tmp_path):
    """Chromium loads the file with networking off; the DOM has every section and the PNGs decode."""
    html = digits_run.run_dir / "report.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,3000", html.as_uri()],
                   capture_output=True, timeout=90, check=True)
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (3000, 1200)
    assert (img < 250).mean() > 0.05  # not a blank page: text, tables and figures drawn
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=90, check=True).stdout
    assert re.findall(r'<section id="(\w+)">', dom) == SECTIONS
    imgs = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert {a for a, _ in imgs} >= {"training curves", "confusion matrix (counts)", "reliability diagram",
                                    "most confident wrong predictions"}
    import base64
    import io
    for _, data in imgs:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()


def test_ece_known_values():
    from convclass.metrics import calibration_bins, expected_calibration_error
    # always 90 % confident, right 90 % of the time: perfectly calibrated
    y = np.array([0] * 9 + [1])
    probs = np.tile([0.9, 0.1], (10, 1))
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)
    # always 90 % confident, right half the time: ECE = |0.5 - 0.9| = 0.4
    y = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(y, probs) == pytest.approx(0.4)
    b = calibration_bins(y, probs, n_bins=10)
    assert sum(b["count"]) == 10 and b["count"][8] == 10  # 0.9 falls in (0.8, 0.9]
    assert b["accuracy"][8] == pytest.approx(0.5) and np.isnan(b["accuracy"][0])


def test_most_confused_pairs():
    from convclass.metrics import most_confused_pairs
    cm = [[5, 3, 0], [1, 6, 0], [0, 4, 2]]
    pairs = most_confused_pairs(cm, ["a", "b", "c"], top=2)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("c", "b", 4), ("a", "b", 3)]
    assert pairs[0]["fraction"] == pytest.approx(4 / 6)


def test_figures_stay_readable_with_120_classes(tmp_path):
    """120 classes: the matrix grows to fit a label per class (~0.14 inch each) and stays a sane size."""
    from convclass.reporting.figures import plot_confusion, plot_per_class
    from convclass.plotting import short
    k = 120
    rng = np.random.default_rng(0)
    cm = rng.poisson(0.3, (k, k))
    cm[np.arange(k), np.arange(k)] += 15
    classes = [f"class_with_a_long_name_{i:03d}" for i in range(k)]
    assert len({short(c) for c in classes}) == k  # shortened labels keep the part that differs
    w, h = Image.open(plot_confusion(cm, classes, tmp_path / "cm.png", normalize=True)).size
    assert 1500 < w < 4000 and 1300 < h < 4000, (w, h)
    per = [{"class": c, "precision": 0.5, "recall": 0.4, "f1": float(i) / k, "support": 10}
           for i, c in enumerate(classes)]
    w, h = Image.open(plot_per_class(per, tmp_path / "per.png")).size
    assert h > 1500 and w < 1500, (w, h)  # one readable row per class


def test_report_leads_with_the_result_and_folds_the_settings(digits_run):
    doc = (digits_run.run_dir / "report.html").read_text()
    first = doc[doc.index('<section id="result">'):doc.index('<section id="metrics">')]
    acc = digits_run.test_metrics["accuracy"]
    assert f"<b>{100 * acc:.2f} %</b><span>accuracy</span>" in first and "<span>macro F1</span>" in first
    assert 'alt="training curves"' in first  # the curves sit with the headline numbers, not two screens down
    settings = doc[doc.index('<section id="settings">'):]
    assert settings.index("<details>") < settings.index("<table>")  # folded
    changed = settings[:settings.index("all ")]  # the first fold: only what differs from the defaults
    for option in ("epochs", "lr", "device", "name"):
        assert f'<td class="l">{option}</td>' in changed, option
    for default in ("quiet", "sync_bn", "amp", "optimizer"):
        assert f'<td class="l">{default}</td>' not in changed, default
    assert '<td class="l">sync_bn</td>' in settings  # one click further: all of them


def test_one_epoch_curves_get_a_whole_epoch_axis(tmp_path, monkeypatch):
    from convclass.reporting import figures
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig) or path)
    row = {"epoch": "1", "train_loss": "1.2", "train_acc": "0.7", "val_loss": "1.4", "val_acc": "0.6", "lr": "0.001"}
    figures.plot_curves([row], tmp_path / "c.png")
    for ax in drawn[0].axes:
        assert ax.get_xlim() == (0.5, 1.5) and list(ax.get_xticks()) == [1]  # was 0.945-1.05 in 0.015 steps


def test_console_summaries_have_no_padding_or_tautologies():
    from convclass.evaluation.evaluate import format_report
    from convclass.inspection import format_inspection
    per = [{"class": c, "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 5} for c in ("cat", "dog")]
    m = {"split": "test", "n": 10, "accuracy": 0.5, "per_class": per,
         **{f"{k}_{a}": 0.5 for k in ("precision", "recall", "f1") for a in ("macro", "weighted")}}
    text = format_report(m)
    assert "macro precision / recall / F1" in text and "(macro" not in text  # was "(macro   )"
    r = {"name": "pets", "classes": ["cat", "dog"], "n": {"train": 1000}, "notes": [],
         "counts": {"train": [500, 500]}, "imbalance_ratio": 1.0, "sizes": {}, "modes": {}, "broken": [],
         "near_distance": 6, "output_dir": "x", **{f"{k}_{v}": [] if v == "duplicates" else {}
                                                   for k in ("exact", "near") for v in ("duplicates", "counts")}}
    text = format_inspection(r)
    assert "every class 500" in text and "smallest" not in text  # was "smallest 500 (cat), largest 500 (cat)"
