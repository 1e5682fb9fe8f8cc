"""The per-class (single-label) and per-label (multi-label) table of the console report: one layout for both, and
every name passed through printable(), since class names come from folder names and CSV cells."""
from __future__ import annotations

from ..errors import printable

__all__ = ["PRF", "metric_table"]

# (key, header, width, decimals): the columns both tables share
PRF = [("precision", "precision", 9, 4), ("recall", "recall", 7, 4), ("f1", "f1", 7, 4)]


def metric_table(rows: list[dict], name: str, columns: list[tuple[str, str, int, int | None]], limit: int,
                 rest_file: str) -> list[str]:
    """Lines of a table: the `name` column (at most 24 characters), then `columns` as (key, header, width,
    decimals or None for a count), right-aligned; a value None shows as -. Past `limit` rows one line points to
    `rest_file`, which holds them all."""
    names = [printable(r[name]) for r in rows]
    width = max(8, min(24, max(map(len, names), default=0)))

    def cell(v, w: int, d: int | None) -> str:
        return "-".rjust(w) if v is None else f"{v:{w}d}" if d is None else f"{v:{w}.{d}f}"

    lines = [f"  {name:<{width}} " + " ".join(h.rjust(w) for _, h, w, _ in columns)]
    lines += [f"  {n[:width]:<{width}} " + " ".join(cell(r[k], w, d) for k, _, w, d in columns)
              for n, r in zip(names[:limit], rows[:limit])]
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more {name}{'es' if name.endswith('s') else 's'} in {rest_file}")
    return lines
