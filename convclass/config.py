"""The training configuration: one dataclass, loaded from YAML, overridden by flags, saved with every run."""
from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConvclassError

__all__ = ["TrainConfig", "load_config", "save_config"]


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


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.exists():
        raise ConvclassError(f"config file {path} not found; pass a YAML file or a run folder")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConvclassError(f"{path} is not a mapping of option: value")
    data.pop("git_commit", None)
    return TrainConfig().update(**data)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
