"""`convclass compare`: several runs side by side, as a terminal table and one PNG of overlaid curves."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ..config import read_yaml
from ..errors import ConvclassError
from .figures import plot_compare_curves
from .run_report import read_history

__all__ = ["compare_runs", "format_comparison"]


def _params(run: Path) -> int | None:
    from ..checkpoint import load_checkpoint
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            state = load_checkpoint(run / name)["model_state"]
            return int(sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                                   "num_batches_tracked"))))
    return None


def _summary(run: Path) -> dict:
    if not run.is_dir() or not ((run / "metrics.csv").exists() or (run / "test_metrics.json").exists()):
        raise ConvclassError(f"{run} is not a run folder (no metrics.csv or test_metrics.json); pass runs/NAME")
    cfg = read_yaml(run / "config.yaml", "run config") if (run / "config.yaml").exists() else {}
    test = json.loads((run / "test_metrics.json").read_text()) if (run / "test_metrics.json").exists() else {}
    calib = json.loads((run / "calibration.json").read_text()) if (run / "calibration.json").exists() else {}
    hist = read_history(run)
    val = [float(r["val_acc"]) for r in hist if r.get("val_acc") not in (None, "", "nan")]
    return {"run": run.name, "model": (cfg or {}).get("model"), "data": (cfg or {}).get("data"),
            "params": _params(run), "epochs": len(hist), "best_val_acc": max(val) if val else None,
            "test_acc": test.get("accuracy"), "test_top5": test.get("top5_accuracy"),
            "test_f1_macro": test.get("f1_macro"), "test_map": test.get("map"), "ece": calib.get("ece"),
            "train_seconds": sum(float(r.get("seconds") or 0) for r in hist) if hist else None,
            "history": hist}


def compare_runs(runs: list[str | Path], output: str | Path | None = None) -> dict:
    """{rows: [per-run summary], png: path of the overlaid curves}; the PNG defaults to <first run's parent>/
    compare-<run>-vs-<run>.png."""
    if len(runs) < 1:
        raise ConvclassError("compare needs at least one run folder")
    rows = [_summary(Path(r)) for r in runs]
    names = [r["run"] for r in rows]
    if len(set(names)) < len(names):  # same folder name under different parents: use the full paths
        names = [str(r) for r in runs]
        for row, n in zip(rows, names):
            row["run"] = n
    out = Path(output) if output else _default_png(runs, names)
    png = plot_compare_curves({r["run"]: r["history"] for r in rows if r["history"]}, out)
    return {"rows": [{k: v for k, v in r.items() if k != "history"} for r in rows], "png": str(png)}


def _default_png(runs: list, names: list[str]) -> Path:
    """<first run's parent>/compare-A-vs-B.png: each set of runs its own file, the same set the same one."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", "-vs-".join(names)).strip("-")
    if len(label) > 100:  # file names end at 255 bytes; a hash keeps long sets apart
        label = f"{label[:80]}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"
    return Path(runs[0]).parent / f"compare-{label}.png"


def _cell(v, fmt: str) -> str:
    if v is None:
        return "-"
    return format(v, fmt)


def format_comparison(c: dict) -> str:
    cols = [("model", "model", "s"), ("params", "params", ",d"), ("epochs", "epochs", "d"),
            ("best val acc", "best_val_acc", ".4f"), ("test acc", "test_acc", ".4f"),
            ("test top-5", "test_top5", ".4f"), ("test macro F1", "test_f1_macro", ".4f"), ("ECE", "ece", ".4f"),
            ("train time (s)", "train_seconds", ".1f")]
    rows = c["rows"]
    if any(r.get("test_map") is not None for r in rows):  # multi-label runs: their first figure
        cols.insert(6, ("test mAP", "test_map", ".4f"))
    w0 = 15  # the longest row label, "train time (s)", plus a space
    widths = [max(12, len(str(r["run"]))) for r in rows]
    lines = [f"{'':<{w0}}" + "".join(f"  {str(r['run']):>{w}}" for r, w in zip(rows, widths))]
    for label, key, fmt in cols:
        lines.append(f"{label:<{w0}}" + "".join(f"  {_cell(r[key], fmt):>{w}}" for r, w in zip(rows, widths)))
    lines.append(f"curves: {c['png']}")
    return "\n".join(lines)
