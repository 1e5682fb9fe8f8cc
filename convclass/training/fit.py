"""The training run: data -> model -> epochs (train_one_epoch, validate) -> checkpoints -> test metrics."""
from __future__ import annotations

import errno
import json
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import (DiskFull, disk_error, load_checkpoint, nonfinite_tensor, remove_orphaned_temps,
                          save_checkpoint)
from ..config import TrainConfig, git_commit, load_config, save_config
from ..data import PreparedData, build_augment, prepare_data
from ..errors import ConvclassError
from ..evaluation.metrics import classification_metrics
from ..inference import resolve_device
from ..inspection.summary import data_summary, format_data_summary
from ..reporting import build_report, save_predictions
from ..models import count_parameters, create_model, model_entry
from ..runtime import tune_cpu_allocator
from . import finetune
from .distributed import (DistContext, init_distributed, param_checksums, share_run_dir, shutdown,
                          validate_sharded, wrap_ddp)
from .epoch import batches_per_epoch, train_one_epoch
from .lookahead import Lookahead
from .optim import build_optimizer
from .runs import (discard_unsaved, finished, heartbeat_writer, new_run_dir, report_lost_steps, saved_test_metrics,
                   write_metrics_csv)
from .schedule import build_scheduler
from .step import Diverged
from .recipes import with_recipe
from .tta import check_tta, tta_logits

__all__ = ["train", "TrainResult", "train_one_epoch", "validate"]


@dataclass
class TrainResult:
    run_dir: Path
    test_metrics: dict
    history: list[dict]
    config: TrainConfig


class _Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


MAX_LR = 1e10         # far above any useful rate; larger ones overflow float32 in the optimizer's arithmetic
EXPLODED = 100.0      # a training loss this many times a uniform guess's has exploded


def _exploded(loss: float, epoch: int, num_classes: int, history: list[dict], cfg: TrainConfig) -> str | None:
    """A warning for the first epoch whose loss is orders of magnitude above where every classifier starts (a
    uniform guess, ln K): a run that goes on to finish "successfully" with such a loss has learnt nothing."""
    start = math.log(max(num_classes, 2))
    earlier = [r["train_loss"] for r in history]
    if not loss > EXPLODED * start or any(x > EXPLODED * start for x in earlier):
        return None
    best = f", best so far {min(earlier):.3g}" if earlier else ""
    return (f"the training loss exploded at epoch {epoch + 1}: {loss:.3g}, {loss / start:.0e} times a fresh "
            f"model's {start:.2f}{best}; the weights are likely useless: lower --lr (now {cfg.lr:g}) or add "
            "--grad-clip 1.0")


@torch.no_grad()
def validate(model, split, data: PreparedData, device, batch_size: int,
             ctx: DistContext = DistContext(), tta: str = "none") -> tuple[dict, torch.Tensor]:
    """Loss and accuracy on a split, plus the probabilities (N, K). Under DDP each rank scores every
    world-th image and the sums are reduced: the figure covers the whole split, not rank 0's share."""
    if ctx.enabled:
        return validate_sharded(finetune.input_view(model, data), split, data.mean, data.std, device, batch_size, ctx)
    logits = tta_logits(finetune.input_view(model, data), split.x, data.mean, data.std, device, batch_size, tta)
    if len(split) == 0:
        return {"loss": float("nan"), "acc": float("nan")}, logits
    loss = F.cross_entropy(logits, split.y).item()
    acc = (logits.argmax(1) == split.y).float().mean().item()
    return {"loss": loss, "acc": acc}, logits.softmax(1)


def _progress(cfg: TrainConfig):
    interactive = sys.stderr.isatty() and not cfg.quiet
    if not interactive:
        return lambda it, desc="": it
    from tqdm.auto import tqdm
    return lambda it, desc="": tqdm(it, desc=desc, leave=False, dynamic_ncols=True)


def _diverged(what: str, cfg: TrainConfig, run_dir: Path, epoch: int) -> str:
    kept = (f"{run_dir}/last.pt holds epoch {epoch}, the last finite one" if (run_dir / "last.pt").exists() else
            "no epoch finished, so no checkpoint was written")
    return (f"training diverged: {what}; lower --lr (now {cfg.lr:g}) or add --grad-clip 1.0. Nothing non-finite "
            f"was saved: {kept}")


def _disk_full(e: BaseException, run_dir: Path) -> ConvclassError | None:
    """A full disk (checkpoint, metrics.csv, TensorBoard, ...) as one line: where, how much is free, and how to
    go on once there is space (--resume continues from last.pt and scores a finished run)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        e = DiskFull(disk_error(e.filename or run_dir, e))
    if not isinstance(e, DiskFull):
        return None
    then = (f"continue with `convclass train --resume {run_dir}`" if (run_dir / "last.pt").exists()
            else "run the command again")
    return ConvclassError(f"{e}, then {then}")


def _checkpoint_payload(model, cfg, data, arch_args, epoch, history, best_val, bad_epochs, opt, scheduler,
                        scaler, lookahead, metrics) -> dict:
    return {
        "arch": cfg.model, "arch_args": arch_args, "model_state": model.state_dict(),
        "classes": data.classes,
        "preprocess": {"img_size": data.img_size, "channels": data.channels, "mean": data.mean, "std": data.std},
        "metrics": metrics, "epoch": epoch, "history": history, "best_val": best_val, "bad_epochs": bad_epochs,
        "config": cfg.to_dict(), "optimizer_state": opt.state_dict(),
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "scaler_state": scaler.state_dict(),
        "lookahead_state": lookahead.state_dict() if lookahead is not None else None,
        "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])},
        "data": {"name": data.name, "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test)},
    }


def _absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """A relative --data folder/CSV (and --data-root) made absolute, so config.yaml still finds the data when
    `evaluate` or `--resume` runs from another working directory."""
    data = Path(cfg.data).expanduser()
    if data.exists():
        cfg = cfg.update(data=str(data.resolve()))
    if not cfg.data_root.startswith("~") and not Path(cfg.data_root).is_absolute():
        cfg = cfg.update(data_root=str(Path(cfg.data_root).resolve()))
    return cfg


def _check_config(cfg: TrainConfig) -> None:
    """Values no run can use, rejected before any work (and before a run folder exists)."""
    if cfg.epochs < 1:
        raise ConvclassError(f"--epochs must be at least 1, not {cfg.epochs}")
    if cfg.batch_size < 1:
        raise ConvclassError(f"--batch-size must be at least 1, not {cfg.batch_size}")
    if cfg.micro_batch is not None and cfg.micro_batch < 2:
        raise ConvclassError(f"--micro-batch must be at least 2 (BatchNorm needs 2 images), not {cfg.micro_batch}")
    if cfg.workers is not None and cfg.workers < 0:
        raise ConvclassError(f"--workers must be 0 or more, not {cfg.workers} (leave it out for the default)")
    if isinstance(cfg.lr, (int, float)) and not (math.isfinite(cfg.lr) and 0 <= cfg.lr <= MAX_LR):
        raise ConvclassError(f"--lr must be a number from 0 to {MAX_LR:g}, not {cfg.lr} (typical: 1e-4 to 1)")
    check_tta(cfg.tta)
    for name in ("val_split", "test_split"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConvclassError(f"--{name.replace('_', '-')} is a fraction in [0, 1), not {getattr(cfg, name)}")


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: list | None = None, prepared: PreparedData | None = None, **overrides) -> TrainResult:
    """Train a model; the Python API behind `convclass train`. Overrides are TrainConfig fields.

    `callbacks`: functions called as cb(epoch_row: dict, run_dir: Path) after each epoch's checkpoint is
    written; one returning True stops training (tuning uses this to prune trials).
    `prepared`: data already split and decoded (cross-validation folds); config.data is then only recorded.
    """
    ckpt = done = None
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").exists():
            raise ConvclassError(f"--resume {run_dir}: not a run folder (no config.yaml)")
        cfg = load_config(run_dir)
        if overrides.get("epochs") and overrides["epochs"] != cfg.epochs:
            if cfg.schedule == "onecycle":  # its state fixes the total step count; stepping past it fails
                raise ConvclassError(f"--resume {run_dir}: a onecycle schedule cannot be extended from "
                                     f"{cfg.epochs} to {overrides['epochs']} epochs; start a new run (--weights "
                                     f"{run_dir}/best.pt) instead")
            cfg = cfg.update(epochs=overrides["epochs"])  # allow extending a finished run
        cfg = cfg.update(quiet=overrides.get("quiet", cfg.quiet))
        if remove_orphaned_temps(run_dir):  # a kill mid-write leaves .last.pt.XXXX.tmp behind
            _Log(cfg.quiet)(f"note: removed the unfinished checkpoint writes an interrupted run left in {run_dir}")
        if (run_dir / "last.pt").exists():
            ckpt = load_checkpoint(run_dir / "last.pt")
            done = finished(run_dir, ckpt, cfg)
        if done and saved_test_metrics(run_dir) is not None:
            _Log(cfg.quiet)(done)
            return TrainResult(run_dir=run_dir, test_metrics=saved_test_metrics(run_dir),
                               history=list(ckpt["history"]), config=cfg)
    else:
        cfg = _absolute_paths(finetune.resolve_config(with_recipe(config or TrainConfig(), overrides)))
        run_dir = None
    _check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx, device = init_distributed(resolve_device(cfg.device))
    if device.type == "cpu":
        tune_cpu_allocator()
    log = _Log(cfg.quiet or not ctx.is_main)  # one voice: only rank 0 prints, writes files and draws progress
    _seed_everything(cfg.seed)

    entry = model_entry(cfg.model)
    plan = finetune.input_plan(cfg, entry.default_img_size)  # size/statistics the starting weights expect
    data = prepared if prepared is not None else prepare_data(
        cfg.data, data_root=cfg.data_root, val_split=cfg.val_split, test_split=cfg.test_split, subset=cfg.subset,
        seed=cfg.seed, **plan.prepare_kwargs())
    for note in data.notes:
        log(f"note: {note}")
    plan.apply(data, log)
    log(data.summary())
    log(format_data_summary(data_summary(data)))

    arch_args = {"num_classes": len(data.classes), "in_chans": data.channels, "img_size": data.img_size,
                 **cfg.model_args}
    _seed_everything(cfg.seed)
    model = create_model(cfg.model, **arch_args).to(device)
    if cfg.channels_last:  # NHWC: faster oneDNN kernels on the CPU too (ResNet-18 1.5x, cnn3 1.4x; docs/fast.md)
        model = model.to(memory_format=torch.channels_last)
    log(f"model {cfg.model}: {count_parameters(model):,} parameters on {device}")
    if ckpt is None:
        finetune.init_weights(model, cfg, log)
        if hasattr(model, "init_from_data") and not (cfg.weights or cfg.pretrained):
            model.init_from_data(data.train.x, data.mean, data.std)  # e.g. airbench's whitened stem
    if cfg.sync_bn and ctx.enabled:
        if device.type != "cuda":
            raise ConvclassError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); drop it on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    opt = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.batch_size)
    opt = finetune.regroup_optimizer(opt, model, cfg)  # discriminative learning rates (--lr-decay)
    steps = batches_per_epoch(len(data.train), cfg.batch_size)  # the steps train_one_epoch takes
    scheduler, when = build_scheduler(opt, cfg.schedule, epochs=cfg.epochs, steps_per_epoch=steps, lr=cfg.lr,
                                      step_size=cfg.step_size, milestones=cfg.milestones, gamma=cfg.gamma,
                                      warmup_epochs=cfg.warmup_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    lookahead = Lookahead(model, cfg.epochs * steps) if cfg.lookahead else None
    augment = build_augment(cfg.augment, data.train.x.shape[-1], data.channels)  # at the stored size

    counts = torch.bincount(data.train.y, minlength=len(data.classes)).float()
    class_weights = sample_weights = None
    if cfg.balance == "loss":
        class_weights = (counts.sum() / (len(counts) * counts.clamp(min=1))).to(device)
    elif cfg.balance == "sampler":
        sample_weights = (1.0 / counts.clamp(min=1))[data.train.y]
    elif cfg.balance != "none":
        raise ConvclassError(f"--balance must be none, loss or sampler, not {cfg.balance!r}")

    history: list[dict] = []
    start_epoch, best_val, bad_epochs = 0, -1.0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
        opt.load_state_dict(ckpt["optimizer_state"])
        if scheduler is not None and ckpt.get("scheduler_state"):
            scheduler.load_state_dict(ckpt["scheduler_state"])
        scaler.load_state_dict(ckpt["scaler_state"])
        if lookahead is not None and ckpt.get("lookahead_state"):
            lookahead.load_state_dict(ckpt["lookahead_state"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        history, best_val, bad_epochs = list(ckpt["history"]), ckpt["best_val"], ckpt["bad_epochs"]
        start_epoch = ckpt["epoch"] + 1
        log(f"{done}; scoring its test split" if done
            else f"resuming {run_dir} at epoch {start_epoch + 1}/{cfg.epochs}")
        if ctx.is_main:
            report_lost_steps(run_dir, start_epoch, log)
    if run_dir is None:
        if ctx.is_main:
            run_dir = new_run_dir(cfg.runs_dir, cfg.name or f"{data.name}-{cfg.model}")
            cfg = cfg.update(git_commit=git_commit(), world_size=ctx.world)
            save_config(cfg, run_dir / "config.yaml")
        run_dir = share_run_dir(run_dir, ctx)
    if ctx.enabled:
        log(f"DDP: {ctx.world} processes, global batch {cfg.batch_size} ({cfg.batch_size // ctx.world} per "
            "process); the learning rate is not rescaled because the global batch does not change")
    log(f"run folder: {run_dir}")

    tb = None  # opened at the first epoch's end: importing TensorBoard is 0.1 s of start-up
    progress = _progress(cfg) if ctx.is_main else (lambda it, desc="": it)
    heartbeat = heartbeat_writer(run_dir) if ctx.is_main else None
    eval_bs = max(256, 2 * (cfg.micro_batch or cfg.batch_size))  # no gradients: twice the training chunk fits
    payload_args = dict(arch_args=arch_args, opt=opt, scheduler=scheduler, scaler=scaler, lookahead=lookahead)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if cfg.patience is not None and bad_epochs >= cfg.patience:  # checked first: a resumed run stays stopped
                log(f"early stopping: no validation improvement for {cfg.patience} epochs")
                break
            t0 = time.perf_counter()
            finetune.set_stage(model, cfg, epoch, log)
            net = wrap_ddp(model, ctx, device)
            try:
                tr = train_one_epoch(net, data, opt, scheduler, when, cfg, epoch, device, augment, class_weights,
                                     sample_weights, scaler, progress, ctx, heartbeat, lookahead)
            except Diverged as e:
                raise ConvclassError(_diverged(str(e), cfg, run_dir, epoch)) from None
            val, _ = validate(model, data.val, data, device, eval_bs, ctx)
            bad = nonfinite_tensor(model.state_dict())  # parameters and buffers (BatchNorm's running_var)
            if bad or not math.isfinite(val["loss"]):
                raise ConvclassError(_diverged(f"{bad or 'the validation loss'} became inf or nan at epoch "
                                               f"{epoch + 1}", cfg, run_dir, epoch))
            if ctx.is_main and (note := _exploded(tr["train_loss"], epoch, len(data.classes), history, cfg)):
                warnings.warn(note)
            lr_now = opt.param_groups[0]["lr"]
            if scheduler is not None and when == "epoch":
                scheduler.step()
            elif scheduler is not None and when == "plateau":
                scheduler.step(val["acc"])
            row = {"epoch": epoch + 1, **tr, "val_loss": val["loss"], "val_acc": val["acc"], "lr": lr_now,
                   "seconds": time.perf_counter() - t0}
            history.append(row)
            improved = val["acc"] > best_val
            best_val, bad_epochs = (val["acc"], 0) if improved else (best_val, bad_epochs + 1)
            metrics = {"val_acc": val["acc"], "val_loss": val["loss"], "epoch": epoch + 1}
            payload = _checkpoint_payload(model, cfg, data, epoch=epoch, history=history, best_val=best_val,
                                          bad_epochs=bad_epochs, metrics=metrics, **payload_args)
            if ctx.is_main:
                # best.pt before last.pt: a kill between the two then leaves last.pt one epoch behind, and the
                # resumed run redoes that epoch and rewrites best.pt identically (the other order loses best.pt).
                if improved:
                    save_checkpoint(payload, run_dir / "best.pt")
                save_checkpoint(payload, run_dir / "last.pt")
                write_metrics_csv(history, run_dir / "metrics.csv")
                if tb is None:
                    from torch.utils.tensorboard import SummaryWriter
                    tb = SummaryWriter(str(run_dir), purge_step=start_epoch)
                for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
                    tb.add_scalar(key.replace("_", "/", 1), row[key], epoch + 1)
                tb.flush()
            log(f"epoch {epoch + 1}/{cfg.epochs}  train loss {tr['train_loss']:.4f} acc {tr['train_acc']:.2%}  "
                f"val loss {val['loss']:.4f} acc {val['acc']:.2%}  lr {lr_now:.3g}  {row['seconds']:.1f}s"
                + ("  *" if improved else ""))
            if any([cb(row, run_dir) for cb in callbacks or []]):
                log("stopped by a callback")
                break
    except BaseException as e:
        if resume is None and ctx.is_main:
            discard_unsaved(run_dir)
        if full := _disk_full(e, run_dir):
            raise full from None
        raise
    finally:
        if tb is not None:
            tb.close()

    if ctx.enabled:
        sums = param_checksums(model, ctx, device)
        if ctx.is_main:
            (run_dir / "ranks.json").write_text(json.dumps({"world": ctx.world, "param_abs_sums": sums}))
            log(f"DDP: replicas {'agree' if len(set(sums)) == 1 else 'DIFFER'} (sum |w| per rank: {sums})")
    try:
        test = _final_test(run_dir, data, device, eval_bs, log, cfg.report, cfg.tta) if ctx.is_main else {}
    except (OSError, DiskFull) as e:
        if full := _disk_full(e, run_dir):
            raise full from None
        raise
    shutdown()
    return TrainResult(run_dir=run_dir, test_metrics=test, history=history, config=cfg)


def _final_test(run_dir: Path, data: PreparedData, device, batch_size: int, log, report: bool = True,
                tta: str = "none") -> dict:
    """Evaluate best.pt on the test split; write test_metrics.json and store the figures in best.pt."""
    best = load_checkpoint(run_dir / "best.pt")
    model = create_model(best["arch"], **best["arch_args"]).to(device)
    model.load_state_dict(best["model_state"])
    _, probs = validate(model, data.test, data, device, batch_size, tta=tta)
    m = classification_metrics(data.test.y.numpy(), probs.numpy(), data.classes)
    m["checkpoint_epoch"] = best["epoch"] + 1
    m["tta"] = tta
    (run_dir / "test_metrics.json").write_text(json.dumps(m, indent=1))
    best["metrics"] = {**best["metrics"], "test_acc": m["accuracy"], "test_f1_macro": m["f1_macro"],
                       "test_n": m["n"]}
    save_checkpoint({k: v for k, v in best.items() if k != "format"}, run_dir / "best.pt")
    top5 = f"  top-5 {m['top5_accuracy']:.2%}" if "top5_accuracy" in m else ""
    log(f"test accuracy {m['accuracy']:.2%}{top5}  macro F1 {m['f1_macro']:.4f}  ({m['n']} images, "
        f"best epoch {m['checkpoint_epoch']})")
    (run_dir / "data_summary.json").write_text(json.dumps(data_summary(data), indent=1))
    save_predictions(run_dir, data.test.y.numpy(), probs.numpy(), data.classes, data.test.paths)
    if report:
        try:
            log(f"report: {build_report(run_dir, images=data.test.x)}")
        except Exception as e:  # the run and its checkpoints are already saved; a figure must not lose them
            warnings.warn(f"could not write the report ({type(e).__name__}: {e}); rebuild it with "
                          f"`convclass report {run_dir}`")
    return m
