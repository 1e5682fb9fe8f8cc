"""The training configuration: one dataclass, loaded from YAML, overridden by flags, saved with every run."""
from __future__ import annotations

import dataclasses
import difflib
import math
import subprocess
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConvclassError
from .safeio import Refused, read_regular

__all__ = ["TrainConfig", "load_config", "read_yaml", "save_config"]

MAX_YAML_BYTES = 2**20  # a full config is ~2 KB; a tuning space file a few KB
MAX_ITEMS = 1000        # entries in one list or mapping of a config
MAX_TEXT = 4096         # characters in one text value
# Numbers a config file may hold, (lowest, highest) both allowed, None: open. Far wider than any real run, yet a
# typo or a hostile file cannot ask for 10^12 epochs or a 20,000-pixel image. Lists: the range of each item.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "img_size": (4, 4096), "channels": (1, 3), "val_split": (0, 1), "test_split": (0, 1), "subset": (1, 2**40),
    "workers": (0, 256), "epochs": (1, 100_000), "batch_size": (1, 2**20), "micro_batch": (2, 2**20),
    "lr": (0, None), "momentum": (0, 1), "weight_decay": (0, None), "step_size": (1, 100_000),
    "milestones": (0, 100_000), "fine_tune": (0, 100_000), "gamma": (0, None), "warmup_epochs": (0, 100_000),
    "label_smoothing": (0, 1), "grad_clip": (0, None), "mixup": (0, None), "cutmix": (0, None),
    "lr_decay": (0, None), "patience": (1, 100_000), "seed": (0, 2**32 - 1), "threads": (1, 1024),
    "world_size": (1, 65_536),
}


@dataclass
class TrainConfig:
    recipe: str | None = None            # named preset (training/recipes.py, e.g. fast); explicit options win
    # data
    data: str = "digits"                 # built-in name, folder, or CSV of path,label
    data_root: str = "~/.cache/convclass"  # where built-in datasets are downloaded / looked for
    img_size: int | None = None          # pixels (square); None: native size if uniform, else the model's default
    channels: int | None = None          # 1 or 3; None: 1 when every training image is grey, else 3
    val_split: float = 0.1               # fraction of train held out for validation when there is no val/ split
    test_split: float = 0.2              # fraction held out for test when the data has no test split
    subset: int | None = None            # keep at most this many training images (stratified), for quick runs
    workers: int | None = None           # DataLoader processes for per-image augmentation; None: cores - 2, max 4
    # model
    model: str = "cnn3"
    model_args: dict[str, Any] = field(default_factory=dict)  # e.g. {width: 2, dropout: 0.3}
    # fine-tuning (training/finetune.py)
    pretrained: bool = False             # start from the model's ImageNet weights (torchvision, timm, lite0)
    weights: str | None = None           # start from a state dict or convclass checkpoint (other class count ok)
    freeze: str = "none"                 # none | backbone (train the head only)
    fine_tune: list[int] = field(default_factory=list)  # E1,E2: E1 head-only epochs, then E2 all-layer epochs
    lr_decay: float = 1.0                # lr x this per layer group from head to input; 1.0: one lr for all
    freeze_bn: bool = False              # keep BatchNorm running statistics fixed
    # optimisation
    epochs: int = 10
    batch_size: int = 64
    micro_batch: int | None = None       # run each batch in chunks of this many images (gradient accumulation)
    optimizer: str = "adam"              # sgd | adam | adamw | rmsprop | adagrad | muon
    lr: float = 1e-3
    momentum: float = 0.9                # sgd / rmsprop
    weight_decay: float = 0.0
    schedule: str = "none"               # none | step | multistep | cosine | onecycle | triangle | linear | plateau
    step_size: int = 30                  # epochs between ×gamma drops (step)
    milestones: list[int] = field(default_factory=list)  # epochs at which to drop (multistep)
    gamma: float = 0.1
    warmup_epochs: float = 0.0           # linear warm-up before cosine
    label_smoothing: float = 0.0
    lookahead: bool = False              # airbench's lookahead: weights pulled to a slow average every 5 steps
    grad_clip: float | None = None       # max global gradient norm
    augment: str = "none"                # none | flip-crop | alt-flip-translate | randaugment | ... (data/augment.py)
    tta: str = "none"                    # test-time augmentation at the final test: none | flip | flip-translate
    mixup: float = 0.0                   # Beta(alpha, alpha) for mixup; 0 disables
    cutmix: float = 0.0                  # Beta(alpha, alpha) for cutmix; 0 disables
    balance: str = "none"                # none | loss (class-weighted loss) | sampler (weighted sampler)
    patience: int | None = None          # early stopping: epochs without val improvement
    # runtime
    device: str = "auto"                 # auto | cpu | cuda
    amp: bool = True                     # mixed precision, CUDA only
    channels_last: bool = True           # NHWC memory format for 4-D weights and batches (CPU and CUDA)
    seed: int = 0
    threads: int | None = None           # torch intra-op threads; None: torch's default
    # bookkeeping
    runs_dir: str = "runs"
    name: str | None = None              # run folder name; auto-numbered if it exists
    quiet: bool = False
    report: bool = True                  # figures and report.html in the run folder after the test (reporting/)
    sync_bn: bool = False                # DDP: synchronise BatchNorm statistics across processes (CUDA)
    world_size: int = 1                  # filled in: processes sharing the run (batch_size is the global batch)
    git_commit: str | None = None        # filled in when the run starts

    def update(self, **overrides: Any) -> "TrainConfig":
        """A copy with the given fields replaced; unknown names are an error (typos must not pass silently)."""
        known = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise ConvclassError(f"unknown config option(s): {', '.join(bad)}; see `convclass train --help`")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases: a kilobyte of nested aliases expands to gigabytes (a
    "billion laughs"), and no option needs them. Tags such as !!python/object are refused by SafeLoader."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.MarkedYAMLError(problem="anchors and aliases (&name, *name) are not allowed",
                                       problem_mark=event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """A YAML file from outside: a regular file of at most 1 MB holding plain values (no anchors, aliases or
    tags); any problem is one ConvclassError line naming the file."""
    try:
        text = read_regular(path, MAX_YAML_BYTES).decode("utf-8")
        return yaml.load(text, Loader=_PlainLoader)
    except Refused as e:
        raise ConvclassError(f"{what} {path}: {e}") from None
    except UnicodeDecodeError:
        raise ConvclassError(f"{what} {path} is not UTF-8 text") from None
    except RecursionError:
        raise ConvclassError(f"{what} {path} is nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise ConvclassError(f"{what} {path}{where}: {problem}; a config holds plain `option: value` lines") \
            from None


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.exists():
        raise ConvclassError(f"config file {path} not found; pass a YAML file or a run folder")
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConvclassError(f"config file {path} is not a mapping of option: value")
    data.pop("git_commit", None)
    return TrainConfig().update(**checked_values(data, f"config file {path}"))


def checked_values(data: dict, where: str) -> dict[str, Any]:
    """Options from a file, each checked against TrainConfig's field type and RANGES; the first wrong one is a
    ConvclassError naming the option, what it must be and what it is."""
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(str(k) for k in data if k not in hints)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(hints), n=1)
        raise ConvclassError(f"{where}: unknown option(s) {', '.join(unknown)[:200]}"
                             + (f" (did you mean {close[0]}?)" if close else "")
                             + "; see `convclass train --help` for the options")
    return {k: _checked(k, v, hints[k], where) for k, v in data.items()}


def _checked(key: str, value: Any, tp: Any, where: str) -> Any:
    args = typing.get_args(tp)
    if type(None) in args:
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
    lo, hi = RANGES.get(key, (None, None))
    if tp in (bool, str):
        ok = isinstance(value, bool) if tp is bool else (isinstance(value, str) and len(value) <= MAX_TEXT
                                                          and "\0" not in value)
        expected = "true or false" if tp is bool else f"text of at most {MAX_TEXT} characters"
    elif tp in (int, float):
        if key == "lr" and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        value, ok = _number(value, tp, lo, hi)
        expected = _describe(tp, lo, hi)
    elif typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        ok = isinstance(value, list) and len(value) <= MAX_ITEMS
        if ok:
            value = [_checked(key, v, item, where) for v in value]
        expected = f"a list of at most {MAX_ITEMS} items, each {_describe(item, lo, hi)}"
    else:  # model_args: knob -> plain value
        ok = isinstance(value, dict) and len(value) <= MAX_ITEMS and all(
            isinstance(k, str) and len(k) <= 100 and _plain(v) for k, v in value.items())
        expected = "a mapping of knob: number, text or true/false"
    if not ok:
        shown = repr(value)
        raise ConvclassError(f"{where}: {key} must be {expected}, not "
                             f"{shown if len(shown) <= 40 else shown[:37] + '...'} ({type(value).__name__})")
    return value


def _number(value: Any, tp: type, lo, hi) -> tuple[Any, bool]:
    """(value as tp, whether it is one within [lo, hi]). A float may be written as text, as YAML 1.1 reads 1e-3."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value, False
    if tp is int:
        ok = isinstance(value, int)
    else:
        try:
            value, ok = float(value), True
        except (ValueError, OverflowError):  # OverflowError: an integer of 400 digits
            return value, False
        ok = math.isfinite(value)
    return value, ok and (lo is None or value >= lo) and (hi is None or value <= hi)


def _describe(tp: type, lo, hi) -> str:
    kind = "a whole number" if tp is int else "a finite number" if tp is float else tp.__name__
    if lo is None or tp not in (int, float):
        return kind
    return f"{kind} from {lo} to {hi}" if hi is not None else f"{kind} >= {lo}"


def _plain(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return v is None or isinstance(v, (bool, int)) or (isinstance(v, str) and len(v) <= MAX_TEXT)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
