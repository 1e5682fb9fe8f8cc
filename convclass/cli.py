"""The `convclass` command: each subcommand parses its flags and calls one library function."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
import warnings
from pathlib import Path

from .config import TrainConfig
from .errors import ConvclassError

__all__ = ["main", "build_parser"]

# Help text for train flags; anything not listed falls back to the field name.
HELP = {
    "data": "built-in name (digits, mnist, fashion-mnist, cifar10, cifar100, flowers102, tiny-imagenet), "
            "a folder (train/ test/ [val/], or class sub-folders) or a CSV of path,label",
    "model": "architecture (see `convclass models`)",
    "augment": "none | flip-crop | shift-rotate | color | randaugment | trivialaugment",
    "schedule": "none | step | multistep | cosine | onecycle | plateau",
    "optimizer": "sgd | adam | adamw | rmsprop | adagrad",
    "balance": "none | loss (class-weighted loss) | sampler (weighted sampler)",
    "patience": "early stopping after this many epochs without validation improvement",
    "device": "auto | cpu | cuda",
    "milestones": "comma-separated epochs for the multistep schedule, e.g. 30,60",
    "model_args": "model knob as KEY=VALUE (repeatable), e.g. --model-arg width=2",
}


def _base_type(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return args[0]
    return tp


def _parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(v.lower(), v)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "git_commit":
            continue
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        h = HELP.get(f.name, f.name.replace("_", " "))
        if f.name == "model_args":
            p.add_argument("--model-arg", dest="model_args", action="append", metavar="KEY=VALUE", help=h)
        elif tp is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=h)
        elif typing.get_origin(tp) is list or tp is list:
            p.add_argument(flag, dest=f.name, default=None, help=h,
                           type=lambda s: [int(x) for x in s.split(",") if x.strip()])
        else:
            p.add_argument(flag, dest=f.name, type=tp, default=None, help=h)


def _config_from_args(args) -> TrainConfig:
    from .config import load_config
    cfg = load_config(args.config) if args.config else TrainConfig()
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}
    if "model_args" in over:
        kv = {}
        for item in over["model_args"]:
            if "=" not in item:
                raise ConvclassError(f"--model-arg expects KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            kv[k.strip()] = _parse_value(v.strip())
        over["model_args"] = {**cfg.model_args, **kv}
    return cfg.update(**over)


def cmd_train(args) -> int:
    from .train import train
    if args.resume:
        res = train(resume=args.resume, epochs=args.epochs, quiet=bool(args.quiet))
    else:
        res = train(_config_from_args(args))
    m = res.test_metrics
    print(f"test accuracy: {m['accuracy']:.4f}  run folder: {res.run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate, format_report
    m = evaluate(args.run, data=args.data, split=args.split, output=args.output, device=args.device,
                 batch_size=args.batch_size, data_root=args.data_root)
    print(format_report(m))
    print(f"written to {m['output_dir']}/ (metrics.json, per_class.csv, confusion_matrix.csv/.png)")
    return 0


def cmd_predict(args) -> int:
    from .inference import predict
    results, skipped = predict(args.run, args.images, topk=args.topk, device=args.device,
                               batch_size=args.batch_size)
    for r in results:
        top = "  ".join(f"{c} {p:.3f}" for c, p in r["top"])
        print(f"{r['path']}: {top}")
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if args.output:
        out = Path(args.output)
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps(results, indent=1))
        else:
            import csv
            with open(out, "w", newline="") as f:
                w = csv.writer(f)
                k = max((len(r["top"]) for r in results), default=0)
                w.writerow(["path"] + [f"{x}{i + 1}" for i in range(k) for x in ("class", "prob")])
                for r in results:
                    w.writerow([r["path"]] + [v for c, p in r["top"] for v in (c, f"{p:.6f}")])
        print(f"wrote {len(results)} predictions to {out}")
    return 0 if results else 1


def cmd_models(args) -> int:
    from .models import count_parameters, create_model, list_models, model_entry
    print(f"{'model':<16}{'params (10 classes, 3x32x32)':>30}  description")
    for name in list_models():
        m = create_model(name, num_classes=10, in_chans=3, img_size=32)
        print(f"{name:<16}{count_parameters(m):>30,}  {model_entry(name).description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convclass", description="Image classification with convolutional networks.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model; writes runs/<name>/")
    t.add_argument("--config", help="YAML config (a run's config.yaml re-runs it); flags override it")
    t.add_argument("--resume", metavar="RUN", help="continue runs/<name> from its last checkpoint")
    _add_config_flags(t)
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a trained model on a split")
    e.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    e.add_argument("--data", help="dataset (default: the one it was trained on)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--output", help="folder for metrics.json and plots (default RUN/eval-SPLIT)")
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", type=int, default=256)
    e.set_defaults(fn=cmd_evaluate)

    pr = sub.add_parser("predict", help="top-k classes for images, folders or globs")
    pr.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--output", help="write predictions to a .csv or .json file")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--batch-size", type=int, default=256)
    pr.set_defaults(fn=cmd_predict)

    m = sub.add_parser("models", help="list the registered models with parameter counts")
    m.set_defaults(fn=cmd_models)
    return p


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warnings
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConvclassError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
