"""convclass predict"""
import csv
import json
import sys
from pathlib import Path

from ..safeio import spreadsheet_safe as safe  # paths and class names in a CSV people open in spreadsheets


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes for images, folders or globs")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="+")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--output", help="write predictions to a .csv or .json file")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    add_runtime_flag(p)
    add_precision_flag(p)
    p.set_defaults(fn=run)


def add_runtime_flag(p) -> None:
    """--runtime for predict and serve. The list is the opt-in: auto never loads TorchScript."""
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx", "openvino", "torchscript"],
                   help="auto: from the file given (run folder or .pt checkpoint: weights only; .onnx: ONNX "
                        "Runtime; a TorchScript file is refused); torch: a run folder or checkpoint; onnx: an "
                        ".onnx file or RUN/export/model.onnx (else model-int8.onnx); openvino: an .xml IR or "
                        "RUN/export/model.openvino.xml; torchscript: run a TorchScript file. TorchScript is "
                        "code: loading the file runs whatever its author wrote (it can write files), so use it only "
                        "for files you made or trust")


def add_precision_flag(p) -> None:
    """--precision for predict and evaluate (training's comes from TrainConfig)."""
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="arithmetic of the forward passes: auto (bf16 autocast on CPUs with AVX-512 BF16 or AMX "
                        "and on CUDA, fp16 on older GPUs, else fp32), fp32, bf16, or fp16 (CUDA only); "
                        "logits are always fp32")


def write_predictions(results: list[dict], out: Path) -> None:
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(results, indent=1))
        return
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        if any("labels" in r for r in results):  # multi-label: every label at its threshold or above
            k = max((len(r["labels"]) for r in results), default=0)
            w.writerow(["path", "n_labels"] + [f"{x}{i + 1}" for i in range(k) for x in ("label", "prob")])
            for r in results:
                w.writerow([safe(r["path"]), len(r["labels"])]
                           + [v for c, p in r["labels"] for v in (safe(c), f"{p:.6f}")])
            return
        k = max((len(r["top"]) for r in results), default=0)
        named = any("names" in r for r in results)  # display names: a name column after each class
        cols = ("class", "name", "prob") if named else ("class", "prob")
        w.writerow(["path"] + [f"{x}{i + 1}" for i in range(k) for x in cols])
        for r in results:
            names = r.get("names") or [c for c, _ in r["top"]]
            cells = [[safe(c), safe(n), f"{p:.6f}"] if named else [safe(c), f"{p:.6f}"]
                     for (c, p), n in zip(r["top"], names)]
            w.writerow([safe(r["path"])] + [v for cell in cells for v in cell])


def run(args) -> int:
    from ..errors import printable
    from ..export import load_predictor, predict_images
    model = load_predictor(args.run, runtime=args.runtime, device=args.device, precision=args.precision)
    results, skipped = predict_images(model, args.images, topk=args.topk, batch_size=args.batch_size)
    for r in results:
        if "labels" in r:  # multi-label
            found = "  ".join(f"{printable(c)} {p:.3f}" for c, p in r["labels"]) or "(no label above its threshold)"
            print(f"{printable(r['path'])}: {found}")
            continue
        shown = zip(r.get("names") or [c for c, _ in r["top"]], (p for _, p in r["top"]))
        print(f"{printable(r['path'])}: " + "  ".join(f"{printable(n)} {p:.3f}" for n, p in shown))
    for path, reason in skipped:
        print(f"skipped {printable(path)}: {printable(reason)}", file=sys.stderr)
    if args.output:
        write_predictions(results, Path(args.output))
        print(f"wrote {len(results)} predictions to {args.output}")
    return 0 if results else 1
