"""report.html: one self-contained file (figures embedded as base64 PNG, inline CSS, no scripts, no network).

The result comes first (accuracy, F1, the curves), then where the model goes wrong, then the data, and the
settings last, folded: the options changed from their defaults, and all of them one click further.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..config import TrainConfig, read_yaml

__all__ = ["write_html", "img_tag", "FIGURES", "report_title", "run_name"]

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
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}img{max-width:100%;height:auto;display:block;margin:.5em 0}
nav a{margin-right:1em}.note{color:#666;font-size:.9em}details{margin:.5em 0}summary{cursor:pointer}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}.card{border:1px solid #ddd;border-radius:6px;
padding:.5em 1em;min-width:8em}.card b{display:block;font-size:1.7em;font-variant-numeric:tabular-nums}
.card span{color:#555;font-size:.85em}"""

# metric key -> (label, percent?)
METRICS = {"accuracy": ("accuracy", True), "top5_accuracy": ("top-5 accuracy", True),
           "precision_macro": ("macro precision", False), "recall_macro": ("macro recall", False),
           "f1_macro": ("macro F1", False), "precision_weighted": ("weighted precision", False),
           "recall_weighted": ("weighted recall", False), "f1_weighted": ("weighted F1", False)}
BOOKKEEPING = ("git_commit", "world_size")  # filled in by the run, shown in the settings' heading


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{html.escape(str(v))}</td>'
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v, percent: bool = False) -> str:
    if isinstance(v, float):
        return f"{100 * v:.2f} %" if percent else f"{v:.4f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


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


def _evaluated(folder: Path) -> bool:
    return folder.name.startswith("eval-") and (folder.parent / "best.pt").exists()


def run_name(folder: Path) -> str:
    """The run's folder name; an `evaluate` folder (RUN/eval-SPLIT) is named after its run."""
    return folder.parent.name if _evaluated(folder) else folder.name


def report_title(folder: Path, split: str) -> str:
    return f"{run_name(folder)}: {split} split" + (" (convclass evaluate)" if _evaluated(folder) else "")


def _result(m: dict, summary: dict, cfg: dict, fig_dir: Path) -> str:
    cards = [("accuracy", _fmt(m["accuracy"], True)), ("macro F1", _fmt(m["f1_macro"]))]
    if "top5_accuracy" in m:
        cards.append(("top-5 accuracy", _fmt(m["top5_accuracy"], True)))
    cards += [("images scored", _fmt(m["n"])), ("calibration error (ECE)", _fmt(summary["ece"]))]
    epochs = summary.get("epochs_run") or cfg.get("epochs")
    what = (f"<p>{html.escape(str(cfg['model']))} trained on {html.escape(str(cfg['data']))} for {epochs} "
            f"epoch{'s' if epochs != 1 else ''}, scored on the {html.escape(summary['split'])} split.</p>"
            if cfg.get("model") else "")
    return (what + '<div class="cards">' + "".join(f"<div class=card><b>{v}</b><span>{html.escape(k)}</span></div>"
                                                   for k, v in cards) + "</div>"
            + _figure(fig_dir, "curves.png", heading=False))


def _settings(cfg: dict) -> str:
    if not cfg:
        return '<p class="note">no config.yaml</p>'
    defaults = TrainConfig().to_dict()
    changed = [[k, v] for k, v in cfg.items() if k not in BOOKKEEPING and k in defaults and v != defaults[k]]
    every = [[k, v] for k, v in cfg.items() if v not in (None, [], {})]
    head = ", ".join(f"{k} {cfg[k]}" for k in BOOKKEEPING if cfg.get(k) is not None)
    return (f"<details><summary>{len(changed)} option{'s' if len(changed) != 1 else ''} changed from the defaults"
            f"{' (' + html.escape(head) + ')' if head else ''}</summary>"
            + (_table(["option", "value"], changed, left=2) if changed else "")
            + f"<details><summary>all {len(every)} settings</summary>{_table(['option', 'value'], every, left=2)}"
              "</details></details>")


def _data(data: dict | None) -> str:
    if not data:
        return '<p class="note">no data_summary.json</p>'
    k = len(data["classes"])
    head = (f"<p>{html.escape(str(data['name']))}: {k} classes, "
            f"{' / '.join(f'{s} {n:,}' for s, n in data['n'].items())} images, "
            f"{data['channels']}x{data['img_size']}x{data['img_size']} pixels; imbalance ratio (train) "
            f"{data['imbalance_ratio']:.2f}; {data.get('broken', 0)} unreadable file(s) skipped.</p>")
    rows = [[c] + [data["counts"][s][i] for s in data["counts"]] for i, c in enumerate(data["classes"])]
    table = _table(["class"] + list(data["counts"]), rows)
    return head + (table if k <= 20 else f"<details><summary>class counts</summary>{table}</details>")


def write_html(folder: Path, summary: dict) -> Path:
    fig_dir = folder / "figures"
    m = summary["metrics"]
    cfg = _load(folder, "config.yaml") or {}
    title = report_title(folder, summary["split"])
    sections = [("result", "Result", _result(m, summary, cfg, fig_dir))]

    rows = [[label, _fmt(m[k], pct)] for k, (label, pct) in METRICS.items() if k in m]
    per = [[r["class"], _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"]), r["support"]]
           for r in m["per_class"]]
    per_t = _table(["class", "precision", "recall", "F1", "support"], per)
    sections.append(("metrics", "Metrics", _table(["metric", "value"], rows)
                     + f"<details{' open' if len(per) <= 20 else ''}><summary>per class</summary>{per_t}</details>"
                     + _figure(fig_dir, "per_class.png") + _figure(fig_dir, "pred_hist.png")))

    pairs = [[p["true"], p["predicted"], p["count"], f"{p['fraction']:.1%}"] for p in summary["most_confused"]]
    pairs_t = ("<h3>most-confused pairs</h3>" + _table(["true class", "predicted as", "images", "of the true class"],
                                                        pairs, left=2)) if pairs else "<p>no mistakes</p>"
    sections.append(("confusion", "Confusion matrix", _figure(fig_dir, "confusion_counts.png")
                     + _figure(fig_dir, "confusion_normalized.png") + pairs_t))
    sections.append(("mistakes", "Mistakes", _figure(fig_dir, "confident_wrong.png")
                     + _figure(fig_dir, "confident_correct.png")))
    sections.append(("calibration", "Calibration", _figure(fig_dir, "reliability.png", heading=False)))
    sections.append(("data", "Data", _data(_load(folder, "data_summary.json"))))
    sections.append(("settings", "Settings", _settings(cfg)))

    nav = "".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{t}</h2>{content}</section>' for sid, t, content in sections)
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}</body></html>")
    out = folder / "report.html"
    out.write_text(doc, encoding="utf-8")
    return out
