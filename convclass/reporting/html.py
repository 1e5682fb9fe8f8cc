"""report.html: one self-contained file (figures embedded as base64 PNG, inline CSS, no scripts, no network)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..config import read_yaml

__all__ = ["write_html", "img_tag", "FIGURES"]

# file name -> heading, in report order
FIGURES = {
    "curves.png": "training curves",
    "confusion_counts.png": "confusion matrix (counts)",
    "confusion_normalized.png": "confusion matrix (row-normalised)",
    "per_class.png": "per-class precision / recall / F1",
    "pred_hist.png": "predicted vs true class counts",
    "reliability.png": "reliability diagram",
    "confident_correct.png": "most confident correct predictions",
    "confident_wrong.png": "most confident wrong predictions",
}

CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}img{max-width:100%;height:auto;display:block;margin:.5em 0}
nav a{margin-right:1em}.note{color:#666;font-size:.9em}details{margin:.5em 0}"""


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{html.escape(str(v))}</td>'
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _load(folder: Path, name: str):
    for d in (folder, folder.parent):
        p = d / name
        if p.exists():
            return json.loads(p.read_text()) if name.endswith(".json") else read_yaml(p, "run config")
    return None


def _figure(fig_dir: Path, name: str, heading: bool = True) -> str:
    p = fig_dir / name
    if not p.exists():
        return f'<p class="note">{html.escape(FIGURES[name])}: not available</p>'
    return (f"<h3>{html.escape(FIGURES[name])}</h3>" if heading else "") + img_tag(p, FIGURES[name])


def write_html(folder: Path, summary: dict) -> Path:
    fig_dir = folder / "figures"
    m = summary["metrics"]
    cfg = _load(folder, "config.yaml") or {}
    data = _load(folder, "data_summary.json")
    sections = []

    rows = [[k, v] for k, v in cfg.items() if v not in (None, [], {})]
    sections.append(("settings", "Settings", _table(["option", "value"], rows, left=2) if rows else
                     '<p class="note">no config.yaml</p>'))

    if data:
        k = len(data["classes"])
        head = (f"<p>{html.escape(str(data['name']))}: {k} classes, "
                f"{' / '.join(f'{s} {n}' for s, n in data['n'].items())} images, "
                f"{data['channels']}x{data['img_size']}x{data['img_size']} pixels; imbalance ratio (train) "
                f"{data['imbalance_ratio']:.2f}; {data.get('broken', 0)} unreadable file(s) skipped.</p>")
        rows = [[c] + [data["counts"][s][i] for s in data["counts"]] for i, c in enumerate(data["classes"])]
        table = _table(["class"] + list(data["counts"]), rows)
        sections.append(("data", "Data", head + (table if k <= 20 else
                                                 f"<details><summary>class counts</summary>{table}</details>")))
    else:
        sections.append(("data", "Data", '<p class="note">no data_summary.json</p>'))

    sections.append(("curves", "Training curves", _figure(fig_dir, "curves.png", heading=False)))

    keys = ["n", "accuracy", "top5_accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
            "recall_weighted", "f1_weighted"]
    rows = [[k, _fmt(m[k])] for k in keys if k in m] + [["expected calibration error", _fmt(summary["ece"])]]
    per = [[r["class"], _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"]), r["support"]]
           for r in m["per_class"]]
    per_t = _table(["class", "precision", "recall", "F1", "support"], per)
    sections.append(("metrics", f"Metrics ({html.escape(summary['split'])} split)",
                     _table(["metric", "value"], rows)
                     + f"<details{' open' if len(per) <= 20 else ''}><summary>per class</summary>{per_t}</details>"
                     + _figure(fig_dir, "per_class.png") + _figure(fig_dir, "pred_hist.png")))

    pairs = [[p["true"], p["predicted"], p["count"], f"{p['fraction']:.1%}"] for p in summary["most_confused"]]
    pairs_t = ("<h3>most-confused pairs</h3>" + _table(["true class", "predicted as", "images", "of the true class"],
                                                        pairs, left=2)) if pairs else "<p>no mistakes</p>"
    sections.append(("confusion", "Confusion matrix", _figure(fig_dir, "confusion_counts.png")
                     + _figure(fig_dir, "confusion_normalized.png") + pairs_t))
    sections.append(("calibration", "Calibration", _figure(fig_dir, "reliability.png", heading=False)))
    sections.append(("mistakes", "Mistakes", _figure(fig_dir, "confident_wrong.png")
                     + _figure(fig_dir, "confident_correct.png")))

    nav = "".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{t}</h2>{content}</section>' for sid, t, content in sections)
    title = f"convclass report: {folder.name}"
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}</body></html>")
    out = folder / "report.html"
    out.write_text(doc, encoding="utf-8")
    return out
