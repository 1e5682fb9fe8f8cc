"""label_issues.html: the flagged images in ranked grids, one file with nothing to fetch.

Thumbnails are PNGs embedded as base64 data URIs and a Content-Security-Policy forbids every other source, so
the page can be mailed or opened offline. Class names and file names come from the user's data: every one is
HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..plotting import to_hwc
from .label_issues import OVERLAP_COLUMNS, IssueReport, label_text

__all__ = ["write_issues_page", "MAX_SHOWN", "THUMB"]

MAX_SHOWN = 200  # images per kind on the page (the CSV lists them all): ~3 KB each as a 96-px PNG
THUMB = 96       # pixels per side of a thumbnail

_TITLES = {"label": "Suspected label errors (lowest self-confidence first)",
           "outlier": "Outliers (least typical embeddings first)",
           "near_duplicate": "Near-duplicates (closest pairs first)"}
_STYLE = ("body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;width:%dpx;margin:4px;"
          "vertical-align:top;font-size:11px;word-wrap:break-word}img{width:%dpx;height:%dpx;"
          "image-rendering:pixelated;border:1px solid #ccc}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 6px}.bad{color:#b00}" % (THUMB + 8, THUMB, THUMB))


def _png_uri(img) -> str:
    im = Image.fromarray(np.ascontiguousarray(to_hwc(img))).convert("RGB")
    im.thumbnail((THUMB, THUMB), Image.LANCZOS) if max(im.size) > THUMB else None
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _short(name: str, n: int = 40) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1):]


def _card(image, caption: list[str], title: str) -> str:
    e = html.escape
    return (f'<figure><img src="{_png_uri(image)}" alt="{e(title)}" title="{e(title)}">'
            f'<figcaption>{"<br>".join(caption)}</figcaption></figure>')


def _shown(classes: list[str], label) -> str:
    return html.escape(_short(label_text(classes, label), 30)) or "(none)"  # an empty multi-label set


def _overlap_table(report: IssueReport) -> str:
    e = html.escape
    title, head = (("Labels most often wrong", ("label", "issue", "images", "share of images")) if report.multilabel
                   else ("Overlapping classes", ("class", "class", "images", "probability")))
    rows = "".join("<tr>" + "".join(f"<td>{o[c]:.4f}</td>" if isinstance(o[c], float) else f"<td>{e(str(o[c]))}</td>"
                                    for c in OVERLAP_COLUMNS[report.multilabel]) + "</tr>"
                   for o in report.overlap[:20])
    return f"<h2>{title}</h2><table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{rows}</table>"


def write_issues_page(report: IssueReport, path: Path, images, classes: list[str], names: list[str],
                      summary: str = "") -> Path:
    """images: indexable (N, C, H, W) uint8; names: one display name per image (a file path or #INDEX)."""
    e = html.escape
    parts = [f"<h1>Label issues</h1><p>{e(summary)}</p>",
             "<p>Scores are cleanlab's quality, 0 to 1: lower is more likely an issue. label_issues.csv lists "
             "every flagged image; train again on without_issues.csv or relabelled.csv.</p>"]
    parts += [f"<p>{e(n)}</p>" for n in report.notes]
    if report.overlap:
        parts.append(_overlap_table(report))
    for kind, title in _TITLES.items():
        found = [i for i in report.issues if i.kind == kind]
        parts.append(f"<h2>{e(title)}: {len(found)}</h2>")
        cards = []
        for rank, i in enumerate(found[:MAX_SHOWN], 1):
            cap = [f"#{rank} score {i.score:.3f}", f"given: <b>{_shown(classes, i.given)}</b>"]
            if i.suggested != i.given:
                cap.append(f'<span class="bad">suggested: <b>{_shown(classes, i.suggested)}</b></span>')
            if i.partner is not None:
                cap.append(f"twin: {e(_short(names[i.partner]))}")
            cap.append(e(_short(names[i.index])))
            cards.append(_card(images[i.index], cap, names[i.index]))
        if len(found) > MAX_SHOWN:
            cards.append(f"<p>… and {len(found) - MAX_SHOWN} more in label_issues.csv</p>")
        parts.append("".join(cards))
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    path.write_text(f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
                    f'content="{csp}"><title>Label issues</title><style>{_STYLE}</style></head><body>'
                    + "\n".join(parts) + "</body></html>", encoding="utf-8")
    return path
