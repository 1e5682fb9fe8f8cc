"""Setting a run up, step by step: the config (fresh or resumed), the process, the data, the model, and the
TrainState that the loop trains (optimizer, schedule, scaler, augmentation, loss). lr-find uses the same steps."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..checkpoint import load_checkpoint, remove_orphaned_temps
from ..config import TrainConfig, load_config, resume_overrides
from ..data import PreparedData, build_augment, prepare_data
from ..errors import ConvclassError
from ..inference import resolve_device
from ..data.sources import DataOptions
from ..data.summary import data_summary, format_data_summary
from ..models import count_parameters, create_model, model_entry
from ..precision import describe_precision, resolve_precision
from ..runtime import tune_cpu_allocator
from . import finetune
from .core import TrainState
from .distributed import DistContext, init_distributed
from .epoch import batches_per_epoch
from .losses import asl_settings, loss_weights, sample_weights as image_weights
from .optim import build_optimizer
from .recipes import recipe_line, training_sizes, with_recipe
from .runs import finished
from .schedule import build_scheduler
from .val_sample import cap_validation

__all__ = ["Log", "build_model", "build_state", "load_data", "resolve_config", "resume_config",
           "seed_everything", "start_process"]

class Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """A relative --data folder/CSV (--image-root, --class-names, --data-root) made absolute, so config.yaml still
    finds the data when `evaluate` or `--resume` runs from another working directory."""
    for key in ("data", "image_root", "class_names"):
        value = getattr(cfg, key)
        if value and Path(value).expanduser().exists():
            cfg = cfg.update(**{key: str(Path(value).expanduser().resolve())})
    if cfg.data.startswith("hf:") and Path(cfg.data[3:]).expanduser().exists():  # a local Hugging Face dataset
        cfg = cfg.update(data="hf:" + str(Path(cfg.data[3:]).expanduser().resolve()))
    if not cfg.data_root.startswith("~") and not Path(cfg.data_root).is_absolute():
        cfg = cfg.update(data_root=str(Path(cfg.data_root).resolve()))
    return cfg


def resolve_config(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """A new run's config, validated: the base, its recipe, the overrides, fine-tuning resolved, paths made
    absolute."""
    return _absolute_paths(finetune.resolve_config(with_recipe(config or TrainConfig(), overrides)))


def resume_config(run_dir: Path, overrides: dict) -> tuple[TrainConfig, dict | None, str | None]:
    """(config, last.pt or None, None or the line saying the run is complete) of a run folder to resume; each
    option given again is applied or refused by config.resume_overrides."""
    if not (run_dir / "config.yaml").exists():
        raise ConvclassError(f"--resume {run_dir}: not a run folder (no config.yaml)")
    cfg, notes = resume_overrides(load_config(run_dir), overrides, run_dir)
    log = Log(cfg.quiet)
    for note in notes:
        log(note)
    if remove_orphaned_temps(run_dir):  # a kill mid-write leaves .last.pt.XXXX.tmp behind
        log(f"note: removed the unfinished checkpoint writes an interrupted run left in {run_dir}")
    if not (run_dir / "last.pt").exists():
        return cfg, None, None
    ckpt = load_checkpoint(run_dir / "last.pt")
    return cfg, ckpt, finished(run_dir, ckpt, cfg)


def check_compile_toolchain(device: torch.device) -> None:
    """--compile's toolchain, checked before any data is read: inductor builds CPU kernels with a C++ compiler and
    CUDA kernels with Triton; without them the first step would fail minutes in, with a page of traceback."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        if not has_triton():
            raise ConvclassError("--compile on CUDA needs Triton (pip install triton); or train without --compile")
        return
    from torch._inductor.cpp_builder import get_cpp_compiler
    try:
        get_cpp_compiler()
    except Exception:  # inductor raises its own types here, and they differ between platforms and versions
        raise ConvclassError("--compile needs a C++ compiler for the CPU kernels (Debian/Ubuntu: apt install g++, "
                             "or point CXX at one); or train without --compile") from None


def start_process(cfg: TrainConfig) -> tuple[DistContext, torch.device, Log]:
    """Threads, the DDP process group (when torchrun started us), the device, and a log only rank 0 prints."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx, device = init_distributed(resolve_device(cfg.device))
    if cfg.compile:
        check_compile_toolchain(device)
    if device.type == "cpu":
        tune_cpu_allocator()
    seed_everything(cfg.seed)
    log = Log(cfg.quiet or not ctx.is_main)
    if line := recipe_line(cfg):
        log(line)
    return ctx, device, log


def load_data(cfg: TrainConfig, log, prepared: PreparedData | None = None) -> PreparedData:
    """The splits, decoded at the size (and normalised with the statistics) the starting weights expect.
    `prepared`: data already split and decoded (cross-validation folds)."""
    plan = finetune.input_plan(cfg, model_entry(cfg.model).default_img_size)
    data = prepared if prepared is not None else prepare_data(
        cfg.data, data_root=cfg.data_root, val_split=cfg.val_split, test_split=cfg.test_split, subset=cfg.subset,
        seed=cfg.seed, options=DataOptions.from_config(cfg), cache=cfg.cache, **plan.prepare_kwargs())
    for note in data.notes:
        log(f"note: {note}")
    plan.apply(data, log)
    cap_validation(data, cfg, log)
    log(data.summary())
    log(format_data_summary(data_summary(data)))
    return data


def build_model(cfg: TrainConfig, data: PreparedData, device: torch.device, log, *, fresh: bool = True,
                ctx: DistContext = DistContext()) -> tuple[nn.Module, dict]:
    """(model, its create_model arguments); `fresh`: with its starting weights (a resume loads its own)."""
    arch_args = {"num_classes": len(data.classes), "in_chans": data.channels, "img_size": data.img_size,
                 **cfg.model_args}
    seed_everything(cfg.seed)
    model = create_model(cfg.model, **arch_args).to(device)
    if cfg.channels_last:  # NHWC: faster oneDNN kernels on the CPU too (ResNet-18 1.5x, cnn3 1.4x; docs/fast.md)
        model = model.to(memory_format=torch.channels_last)
    log(f"model {cfg.model}: {count_parameters(model):,} parameters on {device}")
    if fresh:
        finetune.init_weights(model, cfg, log)
        if hasattr(model, "init_from_data") and not (cfg.weights or cfg.pretrained):
            model.init_from_data(data.train.x, data.mean, data.std)  # e.g. airbench's whitened stem
    if cfg.sync_bn and ctx.enabled:
        if device.type != "cuda":
            raise ConvclassError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); drop it on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, arch_args


def build_state(cfg: TrainConfig, data: PreparedData, model: nn.Module, arch_args: dict, device: torch.device,
                log, ctx: DistContext = DistContext()) -> TrainState:
    """Everything the loop trains with: optimizer (with --lr-decay groups), schedule, AMP scaler, augmentation
    (at the size images are stored), and the loss's class weights or the sampler's image weights."""
    opt = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.batch_size)
    opt = finetune.regroup_optimizer(opt, model, cfg)  # discriminative learning rates (--lr-decay)
    steps = batches_per_epoch(len(data.train), cfg.batch_size)
    scheduler, when = build_scheduler(opt, cfg.schedule, epochs=cfg.epochs, steps_per_epoch=steps, lr=cfg.lr,
                                      step_size=cfg.step_size, milestones=cfg.milestones, gamma=cfg.gamma,
                                      warmup_epochs=cfg.warmup_epochs)
    asl_settings(cfg, data.task)  # --loss asl on single-label data: refused before the model trains
    class_weights = sample_weights = None
    if cfg.balance == "loss":  # multi-label: BCE's per-label pos_weight
        class_weights = loss_weights(data.train.y, len(data.classes)).to(device)
    elif cfg.balance == "sampler":
        sample_weights = image_weights(data.train.y, len(data.classes))
    precision = resolve_precision(cfg.precision, device, amp=cfg.amp)
    log(describe_precision(cfg.precision, precision, device))
    return TrainState(cfg=cfg, data=data, model=model, optimizer=opt, scheduler=scheduler, when=when,
                      scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"), precision=precision,
                      augment=build_augment(cfg.augment, data.train.x.shape[-1], data.channels, log=log,
                                            sizes=training_sizes(cfg, model, data.img_size, data.channels)),
                      class_weights=class_weights, sample_weights=sample_weights, device=device,
                      steps_per_epoch=steps, arch_args=arch_args, ctx=ctx, log=log)
