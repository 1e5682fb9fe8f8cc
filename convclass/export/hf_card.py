"""The model card (README.md) of an `export --format hf` folder, generated from the run's own files.

Everything in it comes from files (class names, the data's name, settings), so every such text is escaped for
Markdown and HTML, and the training command is shell-quoted inside a fence no value can close.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from pathlib import Path

from ..config import TrainConfig, flag_name

__all__ = ["model_card", "training_command"]

SHOWN_CLASSES = 50
# machine-specific settings, left out of the command someone else would run
LOCAL = {"runs_dir", "data_root", "name", "quiet", "device", "threads", "workers", "report"}


def _md(text) -> str:
    """Plain text for Markdown and HTML: one line, no markup, no tags."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))[:300]
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", text)


def _code(text) -> str:
    """An inline code span that shows `text` as it is (backslashes and tags are literal in code)."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))[:300]
    ticks = "`" * (1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{ticks} {text} {ticks}" if text.startswith("`") or text.endswith("`") else f"{ticks}{text}{ticks}"


def _fence(code: str, lang: str = "") -> str:
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", code)), default=0))
    return f"{ticks}{lang}\n{code}\n{ticks}"


def _flag_value(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def training_command(config: dict | None) -> str | None:
    """`convclass train` with every setting that differs from the default, from the run's resolved config."""
    if not isinstance(config, dict):
        return None
    parts = ["convclass", "train"]
    for f in dataclasses.fields(TrainConfig):
        if f.name in LOCAL or f.metadata.get("flag", "") is None or f.name not in config:
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        v = config[f.name]
        if v == default:
            continue
        flag = flag_name(f.name, f.metadata)
        if isinstance(v, bool):
            parts.append(flag if v else "--no-" + flag[2:])
        elif isinstance(v, dict):  # model_args
            parts += [a for k, x in v.items() for a in (flag, f"{k}={x}")]
        elif v is not None:
            parts += [flag, _flag_value(v)]
    # one line: a value holding a newline (a crafted config) would otherwise spread the command over lines
    return " ".join(shlex.quote(re.sub(r"[\x00-\x1f\x7f]", " ", str(p))[:300]) for p in parts)


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text()) if path.is_file() and path.stat().st_size < 2**22 else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return d if isinstance(d, dict) else {}


def _num(d: dict, key: str) -> float | None:
    v = d.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _wilson(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: honest at 100 % of 6 images, where p +- z*se says +-0."""
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def model_card(ckpt: dict, pre, run_dir: Path | None, name: str) -> str:
    """Markdown with YAML front matter: use, classes, data, metrics, training command, intended use, limits.
    `ckpt` and `pre` (a Preprocess) as model_from_checkpoint checked them; `run_dir` holds the test scores."""
    classes, arch = list(ckpt["classes"]), str(ckpt["arch"])
    test = _read_json(run_dir / "test_metrics.json") if run_dir else {}
    calib = _read_json(run_dir / "calibration.json") if run_dir else {}
    data = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    shown = ", ".join(_code(c) for c in classes[:SHOWN_CLASSES])
    more = f" and {len(classes) - SHOWN_CLASSES:,} more (all in config.json)" if len(classes) > SHOWN_CLASSES else ""
    lines = ["---", "library_name: convclass", "pipeline_tag: image-classification",
             f"tags: [image-classification, convclass, {json.dumps(arch)}]", "---", "",
             f"# {_md(name)}: {_md(arch)} image classifier, {len(classes)} classes", "",
             "## Use", _fence('from convclass import load_model\nmodel = load_model("path/to/this/folder")\n'
                              'print(model.predict("photo.jpg", topk=3))', "python"),
             f"or `convclass predict FOLDER photo.jpg`. Input: {pre.img_size}x{pre.img_size} px, "
             f"{'grey' if pre.channels == 1 else 'RGB'}, resized by {pre.resize}; the preprocessing is in "
             "config.json and applied by convclass." + (
                 f' timm loads it too: `timm.create_model("local-dir:path/to/this/folder", pretrained=True)`.'
                 if arch.startswith("timm:") else ""), "",
             "## Classes", shown + more, "", "## Data"]
    n = {k: data.get(f"n_{k}") for k in ("train", "val", "test")}
    lines.append(f"Trained on {_md(data.get('name') or cfg.get('data') or 'unrecorded data')}: "
                 + ", ".join(f"{v:,} {k}" for k, v in n.items() if isinstance(v, int)) + " images.")
    lines += ["", "## Metrics"]
    acc, n_test = _num(test, "accuracy"), _num(test, "n")
    if acc is not None and n_test:
        lo, hi = _wilson(acc, n_test)
        lines.append(f"On the held-out test split ({int(n_test):,} images): accuracy **{acc * 100:.2f} %** "
                     f"(95 % interval {lo * 100:.1f}-{hi * 100:.1f} %)" + "".join(
                         f", {label} {v * 100:.2f} %" for label, key in (("top-5", "top5_accuracy"),
                                                                        ("macro F1", "f1_macro"))
                         if (v := _num(test, key)) is not None) + ".")
    else:
        lines.append("No test split score was recorded for this run.")
    val = _num(ckpt.get("metrics") or {}, "val_acc")
    if val is not None:
        lines.append(f"Validation accuracy of the kept epoch: {val * 100:.2f} %.")
    if (ece := _num(calib, "ece")) is not None:
        lines.append(f"Expected calibration error: {ece:.4f}.")
    cmd = training_command(cfg)
    lines += ["", "## Training", "The command that trained it (settings that differ from the defaults, from the "
              "run's config.yaml):", _fence(cmd, "bash") if cmd else "not recorded.", "",
              "## Intended use",
              f"Sorting images like those it was trained on into these {len(classes)} classes, as a baseline or "
              "in a pipeline where a person checks uncertain answers.", "",
              "## Limitations",
              f"- It always answers with one of its {len(classes)} classes, also for images of none of them.",
              "- Its scores were measured on a split of the same data; photos from other cameras, places or "
              "people can score lower.",
              "- It has seen only what its training images show: check the classes and data above before use."]
    return "\n".join(lines) + "\n"
