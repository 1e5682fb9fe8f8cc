"""The training configuration: one dataclass, loaded from YAML, overridden by flags, saved with every run.

Each option is declared once, below: its type (a Literal lists the choices), default, help text and range. The
`train` flags are generated from it (commands/common.py), and one validation pass (config_check.py, run by
`TrainConfig.update` and `validate`) checks YAML files, flags and the Python API alike, before any data is read.
"""
from __future__ import annotations

import dataclasses
import functools
import subprocess
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .checks import MAX_IMG_SIZE  # checkpoints and exports refuse larger: a run must be loadable after training
from .config_check import check_value, did_you_mean, flag_name
from .errors import ConvclassError
from .safeio import Refused, read_regular

__all__ = ["TrainConfig", "option", "load_config", "read_yaml", "save_config", "resume_overrides", "check_values",
           "flag_name", "SAFE_ON_RESUME", "Optimizer", "Schedule", "Augment", "Tta", "Balance", "Freeze", "Device",
           "Recipe", "Precision", "Track", "LossName"]

# The choices. The code that implements each (training/optim.py OPTIMIZERS, schedule.py SCHEDULES, data/augment.py
# AUGMENTATIONS, tta.py TTA_MODES, finetune.py FREEZE, recipes.py RECIPES) is held to these by tests/test_config.py.
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "muon"]
Schedule = Literal["none", "step", "multistep", "cosine", "onecycle", "triangle", "linear", "plateau"]
Augment = Literal["none", "flip-crop", "alt-flip-translate", "shift-rotate", "color", "randaugment",
                  "trivialaugment", "rrc-flip"]
Tta = Literal["none", "flip", "flip-translate"]
Balance = Literal["none", "loss", "sampler"]
Freeze = Literal["none", "backbone"]
Device = Literal["auto", "cpu", "cuda"]   # and cuda:<index> (the `pattern` below)
Recipe = Literal["fast", "fast-sgd", "finetune", "none"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Task = Literal["auto", "single", "multi"]
Track = Literal["none", "mlflow"]
LossName = Literal["auto", "asl"]  # training/losses.py LOSSES

MAX_YAML_BYTES = 2**20  # a full config is ~2 KB; a tuning space file a few KB


def option(default: Any = None, help: str = "", *, range: tuple | None = None, exclusive: str | None = None,
           unset: str | None = None, note: str | None = None, metavar: str | None = None, flag: str | None = "",
           pattern: tuple[str, str] | None = None, check: str | None = None, factory: Any = None) -> Any:
    """A TrainConfig field with what the flag, its help and the validation need.

    range: (lowest, highest) allowed, None: open; for a list, the range of each item. exclusive: "lo" or "hi" when
    that end is not allowed. unset: what None means (shown as the default, and in errors). note: appended to an
    out-of-range error. flag: the flag's name when not --<field-name>; None: set by the run, no flag. pattern:
    (regex, shown) for other text accepted (device cuda:1). check: "model" for a model name."""
    md = dict(help=help, range=range, exclusive=exclusive, unset=unset, note=note, metavar=metavar, flag=flag,
              pattern=pattern, check=check)
    return field(default_factory=factory, metadata=md) if factory else field(default=default, metadata=md)


_WHEN_NO_SPLIT = "when the data has no such split"


@dataclass
class TrainConfig:
    recipe: Recipe | None = option(
        help="named preset: fast (airbench94_muon on the CPU), fast-sgd (airbench94), see docs/fast.md, or finetune "
             "(pretrained weights, docs/finetune.md), or none (no preset); options given explicitly override it",
        unset="finetune with --pretrained, else none")
    # data
    data: str = option("digits", "built-in name (digits, mnist, fashion-mnist, cifar10, cifar100, flowers102, "
                                 "tiny-imagenet), a folder (train/ test/ [val/], or class sub-folders), a .zip or "
                                 ".tar[.gz] of such folders (read in place), a CSV of path,label, or hf:NAME_OR_PATH "
                                 "(a Hugging Face dataset)")
    data_root: str = option("~/.cache/convclass", "where built-in datasets are downloaded and decoded images cached",
                            metavar="DIR")
    # reading a CSV/TSV --data (data/table.py) and the class display names (data/names.py): data.DataOptions
    path_column: int | str | None = option(help="CSV column of the image paths or ids: its header name or 0-based "
                                                "index", range=(0, 9999), metavar="NAME|INDEX",
                                           unset="path, file, filename, image, image_id, id ... or the first")
    label_column: int | str | None = option(help="CSV column of the labels (names or integers): its header name or "
                                                 "0-based index", range=(0, 9999), metavar="NAME|INDEX",
                                            unset="label, class, classid, category, target ... or the second")
    group_column: int | str | None = option(help="CSV column saying which images belong together (one subject, "
                                                 "video or patient)", range=(0, 9999), metavar="NAME|INDEX",
                                            unset="group, subject, patient, video ... if there is one")
    group_by: str | None = option(help="regular expression naming each image's group (frames of one object, photos "
                                       "of one patient), searched in its path below the data folder, then in its "
                                       "file name; the group is the first capture group, e.g. '^(\\w+)_' puts "
                                       "obj12_003.jpg in obj12. Carved val/test splits and cross-validation folds "
                                       "keep each group whole", metavar="REGEX",
                                  unset="the CSV's group column, else none: images are split one by one")
    image_root: str | None = option(help="folder the CSV's relative image names are in", metavar="DIR",
                                    unset="the CSV's folder, else a train/, test/, images/ or <CSV name>/ folder "
                                          "beside it that holds them")
    image_ext: str | None = option(help="extension added to CSV image ids that lack it, e.g. .jpg", metavar=".EXT",
                                   unset="as written, else the common image extension that finds the files")
    class_names: str | None = option(help="display names of the classes: classes.txt (one per line in class order, "
                                          "or `key name` lines), words.txt (wnid<TAB>name) or a JSON object of "
                                          "key: name", metavar="FILE",
                                     unset="class_names.json, classes.txt or words.txt beside the data, if any")
    task: Task = option("auto", "single (one class per image), multi (any number of labels per image: sigmoid "
                                "outputs, BCE, per-label thresholds), or auto: multi when a CSV's label cells hold "
                                "several labels (`a|b`, `a,b`, `a b`) or its labels are one-hot 0/1 columns")
    # a Hugging Face --data hf:NAME_OR_PATH (data/hf.py)
    hf_image_column: str | None = option(help="column of the images of a Hugging Face dataset", metavar="COLUMN",
                                         unset="the Image column, else image, img, pixel_values ...")
    hf_label_column: str | None = option(help="column of the labels of a Hugging Face dataset", metavar="COLUMN",
                                         unset="the ClassLabel column (its names become the classes), else label, "
                                               "labels, fine_label, target ...")
    hf_split: str | None = option(help="split of a Hugging Face dataset to train on (validation/val/valid and test "
                                       "are still found by name)", metavar="NAME",
                                  unset="train, else the only split")
    img_size: int | None = option(help="side in pixels of the square images the model sees", range=(4, MAX_IMG_SIZE),
                                  metavar="PIXELS", unset="the native size if every image has it, else the model's")
    channels: Literal[1, 3] | None = option(help="1 (grey) or 3 (RGB); grey images are repeated to RGB",
                                            unset="1 when every training image is grey, else 3")
    val_split: float = option(0.1, f"fraction of the training images held out for validation {_WHEN_NO_SPLIT}",
                              range=(0, 1), exclusive="hi", metavar="FRACTION")
    test_split: float = option(0.2, f"fraction of the images held out for the test {_WHEN_NO_SPLIT}",
                               range=(0, 1), exclusive="hi", metavar="FRACTION")
    subset: int | None = option(help="train on at most this many images (stratified), for quick runs",
                                range=(1, 2**40), metavar="IMAGES", unset="all")
    workers: int | None = option(
        help="DataLoader processes that run per-image augmentations (shift-rotate, color, randaugment, "
             "trivialaugment), or decode streamed images (--cache never), ahead of the training step; 0: in the "
             "training process", range=(0, 256), metavar="N",
        unset="one per core beyond two, at most 4 (streaming: beyond one, at least 1)")
    cache: Literal["auto", "always", "never"] = option(
        "auto", "decode cache (data/decode.py): always decodes every image once to uint8 on disk (the fast path; "
                "refused when it does not fit), never streams the files, decoded per batch in --workers processes "
                "(data/stream.py), auto: the cache when it fits, else streaming (WebDataset shards always stream "
                "unless always)")
    # model
    model: str = option("cnn3", "architecture: a name from `convclass models`, or timm:NAME for any timm model",
                        check="model")
    model_args: dict[str, Any] = option(help="model knob as KEY=VALUE (repeatable), e.g. --model-arg width=2",
                                        factory=dict, flag="--model-arg", metavar="KEY=VALUE", unset="none")
    # fine-tuning (training/finetune.py)
    pretrained: bool = option(False, "start from ImageNet weights (torchvision models, efficientnet_lite0 offline, "
                                     "timm:NAME); resolution and mean/std follow the weights")
    weights: str | None = option(help="start from a state dict or convclass checkpoint/run folder (the head is "
                                      "re-created when the class count differs)", metavar="PATH",
                                 unset="random initialisation")
    freeze: Freeze = option("none", "none: train every layer; backbone: train the head only")
    fine_tune: list[int] = option(help="E1,E2: E1 epochs head only, then E2 epochs all layers (sets --epochs E1+E2)",
                                  range=(0, 100_000), factory=list, metavar="E1,E2", unset="none")
    lr_decay: float = option(1.0, "discriminative learning rates: lr x this per layer group from the head to the "
                                  "input (1 = one rate for all)", range=(0, 1), exclusive="lo", metavar="FACTOR")
    head_probe: bool = option(False, "while the backbone is frozen, first fit the head as a logistic regression "
                                     "on its cached features (linear probe, then fine-tune; the finetune recipe's "
                                     "default)")
    freeze_bn: bool = option(False, "keep BatchNorm running statistics fixed while training")
    # optimisation
    epochs: int = option(10, "passes over the training images", range=(1, 100_000), metavar="N")
    batch_size: int = option(64, "images per optimizer step (the global batch under DDP)", range=(1, 2**20),
                             metavar="N")
    micro_batch: int | None = option(
        help="forward/backward each batch in chunks of this many images and step once (gradient accumulation): the "
             "--batch-size update with less memory", range=(2, 2**20), note="(BatchNorm needs 2 images per chunk)",
        unset="the whole batch at once", metavar="N")
    optimizer: Optimizer = option("adam", "sgd (Nesterov when --momentum > 0), adam, adamw, rmsprop, adagrad or "
                                          "muon (Muon for conv filters, SGD for the rest)")
    lr: float | Literal["auto"] = option(1e-3, "learning rate, or auto: pick it with the LR range test (see "
                                               "`convclass lr-find`)", range=(0, 1e10), note="(typical: 1e-4 to 1)",
                                         metavar="LR")
    momentum: float = option(0.9, "momentum of sgd and rmsprop", range=(0, 1), metavar="M")
    weight_decay: float = option(0.0, "weight decay (decoupled for adamw and muon)", range=(0, None), metavar="WD")
    schedule: Schedule = option("none", "learning-rate schedule: none, step (x --gamma every --step-size epochs), "
                                        "multistep (at --milestones), cosine, onecycle, triangle, linear (to 0) or "
                                        "plateau (x --gamma when validation accuracy stalls)")
    step_size: int = option(30, "epochs between x --gamma drops of the step schedule", range=(1, 100_000),
                            metavar="EPOCHS")
    milestones: list[int] = option(help="comma-separated epochs at which the multistep schedule drops, e.g. 30,60",
                                   range=(0, 100_000), factory=list, metavar="E1,E2,...", unset="none")
    gamma: float = option(0.1, "factor of each step, multistep or plateau drop", range=(0, None), metavar="FACTOR")
    warmup_epochs: float = option(0.0, "epochs of linear warm-up before the cosine schedule", range=(0, 100_000),
                                  metavar="EPOCHS")
    label_smoothing: float = option(0.0, "weight of the uniform distribution mixed into each one-hot label",
                                    range=(0, 1), metavar="EPS")
    loss: LossName = option("auto", "auto: cross-entropy, or binary cross-entropy per label for multi-label data; "
                                    "asl: asymmetric loss for multi-label data (easy negatives down-weighted)")
    asl_gamma_neg: float = option(4.0, "--loss asl: focusing exponent of the negatives", range=(0, 20),
                                  metavar="GAMMA")
    asl_gamma_pos: float = option(0.0, "--loss asl: focusing exponent of the positives", range=(0, 20),
                                  metavar="GAMMA")
    asl_clip: float = option(0.05, "--loss asl: probability margin; a negative below it costs nothing",
                             range=(0, 1), exclusive="hi", metavar="MARGIN")
    lookahead: bool = option(False, "airbench's lookahead: every 5 steps pull the weights toward a slow average "
                                    "that tightens as training ends (--no-lookahead turns a recipe's off)")
    ema: float | None = option(help="validate and keep (best.pt) an exponential moving average of the weights, "
                                    "updated every step with this decay (warm-up: min(DECAY, (1+t)/(10+t)) at step "
                                    "t), e.g. 0.999", range=(0, 1), exclusive="hi", metavar="DECAY", unset="off")
    grad_clip: float | None = option(help="clip the global gradient norm to this", range=(0, None), metavar="NORM",
                                     unset="no clipping")
    augment: Augment = option("none", "training augmentation: none, flip-crop, alt-flip-translate or rrc-flip "
                                      "(random-resized crop and flip, progressive sizes; batch tensor ops), "
                                      "shift-rotate, color, randaugment or trivialaugment (per image, in --workers "
                                      "processes)")
    tta: Tta = option("none", "test-time augmentation at the final test: none, flip or flip-translate (6 views)")
    mixup: float = option(0.0, "alpha of mixup's Beta(alpha, alpha); 0 turns it off", range=(0, None),
                          metavar="ALPHA")
    cutmix: float = option(0.0, "alpha of cutmix's Beta(alpha, alpha); 0 turns it off", range=(0, None),
                           metavar="ALPHA")
    balance: Balance = option("none", "class imbalance: none, loss (class-weighted loss) or sampler (weighted "
                                      "sampler)")
    eval_batch_size: int | None = option(
        help="images per forward pass in validation and the test (no gradients are kept)", range=(1, 2**20),
        unset="the training chunk (--micro-batch, else --batch-size)", metavar="N")
    val_every: int = option(1, "validate every N epochs (and always after the last)", range=(1, 100_000),
                            metavar="N")
    val_max: int | None = option(help="validate on at most this many images (a fixed stratified sample of the "
                                      "validation split; the test split is always scored whole)",
                                 range=(1, 2**40), metavar="IMAGES", unset="all")
    patience: int | None = option(help="stop early after this many epochs without validation improvement",
                                  range=(1, 100_000), metavar="EPOCHS", unset="never")
    # runtime
    device: Device = option("auto", "auto (CUDA when visible, else the CPU), cpu, cuda or cuda:INDEX",
                            pattern=(r"cuda:\d{1,3}", "cuda:INDEX"))
    amp: bool = option(True, "mixed precision on CUDA when --precision is auto (--no-amp: fp32)")
    precision: Precision = option("auto", "arithmetic of forward and backward passes: fp32, bf16 autocast (CPUs with "
                                          "AVX-512 BF16 or AMX, CUDA), fp16 autocast (CUDA only), or auto: bf16 "
                                          "where the hardware runs it fast, fp16 on older CUDA GPUs, else fp32; "
                                          "weights, optimizer state and checkpoints stay fp32")
    channels_last: bool = option(True, "NHWC memory format for 4-D weights and batches (faster kernels on CPU and "
                                       "CUDA)")
    compile: bool = option(False, "torch.compile (inductor) the training forward and backward: the first steps "
                                  "compile (up to a minute on 2 CPU cores; needs a C++ compiler, or Triton on "
                                  "CUDA); measured slower than eager for cnn3 on a 2-core AVX2 CPU (docs/fast.md); "
                                  "validation, checkpoints and exports are unchanged")
    seed: int = option(0, "seed of the splits, the initial weights and the augmentation", range=(0, 2**32 - 1),
                       metavar="N")
    threads: int | None = option(help="torch intra-op threads", range=(1, 1024), metavar="N",
                                 unset="torch's default")
    # bookkeeping
    runs_dir: str = option("runs", "folder the run folder is made in", metavar="DIR")
    name: str | None = option(help="run folder name; numbered if it exists", unset="DATA-MODEL")
    quiet: bool = option(False, "print no per-epoch lines, notes or progress bars")
    report: bool = option(True, "figures and report.html in the run folder after the test")
    track: Track = option("none", "experiment tracking besides TensorBoard: mlflow logs the settings, per-epoch "
                                  "metrics, test scores, figures, report.html and best.pt")
    track_uri: str | None = option(help="MLflow tracking URI: a server (http://HOST:5000), sqlite:///FILE.db or a "
                                        "folder", unset="sqlite:///RUNS_DIR/mlflow.db", metavar="URI")
    sync_bn: bool = option(False, "DDP: synchronise BatchNorm statistics across processes (CUDA only)")
    world_size: int = option(1, "processes sharing the run (filled in; batch_size is the global batch)",
                             range=(1, 65_536), flag=None)
    git_commit: str | None = option(help="filled in when the run starts", flag=None)

    def update(self, **overrides: Any) -> "TrainConfig":
        """A validated copy with the given fields replaced; unknown names are an error (typos must not pass)."""
        return dataclasses.replace(self, **check_values(overrides, "", only_names=True)).validate()

    def validate(self, where: str = "") -> "TrainConfig":
        """Every field checked (type, range, choice, model name): the one pass behind YAML, flags and the API.
        Returns the config with values normalised (a float option given as "1e-3" becomes 0.001)."""
        values = check_values(self.to_dict(), where)
        if values["group_by"] is not None:
            from .data.groups import compile_group_pattern  # a bad pattern fails here, before any data is read
            compile_group_pattern(values["group_by"])
        if values["loss"] == "asl" and values["task"] == "single":
            raise ConvclassError("--loss asl is for multi-label data; drop it with --task single")
        asl_set = [k for k in ("asl_gamma_neg", "asl_gamma_pos", "asl_clip") if values[k] != _FIELDS[k].default]
        if asl_set and values["loss"] != "asl":  # silently unused settings would mislead the run's record
            raise ConvclassError(f"--{asl_set[0].replace('_', '-')} applies only with --loss asl; add --loss asl "
                                 "or drop it")
        if values["pretrained"] and values["channels"] == 1:
            raise ConvclassError("--pretrained ImageNet weights need 3 channels; drop --channels 1 (grey images "
                                 "are repeated to RGB)")
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def check_values(data: dict, where: str = "", *, only_names: bool = False) -> dict[str, Any]:
    """Options from a YAML file (where = "config file PATH"), flags or the API (where = ""), each checked against
    its field; the first wrong one is a ConvclassError naming the option, what it must be and what it is."""
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        raise ConvclassError(f"{where + ': ' if where else ''}unknown option(s) {', '.join(unknown)[:200]}"
                             + did_you_mean(unknown[0], list(_FIELDS))
                             + "; see `convclass train --help` for the options")
    if only_names:
        return data
    hints = _hints()
    return {k: check_value(k, v, hints[k], _FIELDS[k].metadata, where) for k, v in data.items()}


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


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
    where = f"config file {path}"
    return dataclasses.replace(TrainConfig(), **check_values(data, where)).validate(where)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# What `train --resume RUN` may change: how the rest of the run is watched and where it runs, not what it learns.
SAFE_ON_RESUME = ("epochs", "quiet", "patience", "threads", "workers", "device", "report", "eval_batch_size",
                  "val_every", "compile")
_PATHS = ("data", "data_root", "weights", "runs_dir", "image_root", "class_names")


def resume_overrides(saved: TrainConfig, overrides: dict[str, Any], run_dir: str | Path,
                     safe: tuple[str, ...] = SAFE_ON_RESUME, instead: str | None = None
                     ) -> tuple[TrainConfig, list[str]]:
    """The saved config of a run being resumed with the options given again (None: not given) applied, and a note
    for each change. An option equal to its saved value is fine; one in `safe` is applied; any other change is
    refused in one line (a run cannot learn with other settings halfway and resume exactly) that ends with
    `instead` (default: start a new run from the run's weights)."""
    given = {k: v for k, v in check_values(overrides, "", only_names=True).items() if v is not None}
    if isinstance(given.get("model_args"), dict):  # --model-arg adds knobs to the saved ones
        given["model_args"] = {**saved.model_args, **given["model_args"]}
    changed = {k: v for k, v in check_values(given).items() if not _same(k, getattr(saved, k), v)}
    if "epochs" in changed and saved.schedule == "onecycle":  # its state fixes the total step count
        raise ConvclassError(f"--resume {run_dir}: a onecycle schedule cannot be extended from {saved.epochs} to "
                             f"{changed['epochs']} epochs; start a new run (--weights {run_dir}/best.pt) instead")
    refused = [k for k in changed if k not in safe]
    if refused:
        shown = ", ".join(f"{flag_name(k, _FIELDS[k].metadata)} ({_short(getattr(saved, k))} -> "
                          f"{_short(changed[k])})" for k in refused)
        instead = instead or (f"start a new run from its weights instead: convclass train --weights "
                              f"{run_dir}/best.pt with the options you want")
        raise ConvclassError(f"--resume {run_dir} continues with its saved settings and cannot change {shown}; "
                             f"{instead}")
    notes = [f"--resume: {flag_name(k, _FIELDS[k].metadata)} {_short(getattr(saved, k))} -> {_short(v)}"
             for k, v in changed.items() if k != "quiet"]  # the CLI passes quiet=False unless --quiet
    return (saved.update(**changed) if changed else saved), notes


def _same(key: str, old: Any, new: Any) -> bool:
    if key in _PATHS and isinstance(old, str) and isinstance(new, str):  # the run saved --data made absolute
        return Path(old).expanduser().resolve() == Path(new).expanduser().resolve()
    return old == new


def _short(v: Any) -> str:
    text = str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
