"""convclass evaluate"""
from .predict import add_precision_flag

# How to read another labelled set's CSV or Hugging Face columns (the TrainConfig options of the same names);
# the training data is read as the run read it.
SET_OPTIONS = ("path_column", "label_column", "image_root", "image_ext", "hf_image_column", "hf_label_column")


def add_parser(sub) -> None:
    from ..config import TrainConfig
    from ..config_check import flag_name
    e = sub.add_parser("evaluate", help="metrics of a trained model on its test split or on another labelled set")
    e.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    e.add_argument("--data", help="another labelled set (folder, CSV, archive, hf:NAME_OR_PATH, built-in name): "
                                  "every image is scored (its own test split if it has one), labels matched to the "
                                  "model's classes by name, 16 = 00016 (default: the training data's test split)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="split of the training data; of another set, its own split folder of that name")
    e.add_argument("--output", help="folder for metrics.json and plots (default RUN/eval-SPLIT, RUN/eval-<set name> "
                                    "for another set)")
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", "--eval-batch-size", type=int, default=None, metavar="N",
                   help="images per forward pass (default: what the run evaluated with: its --eval-batch-size, else "
                        "its training chunk, --micro-batch or --batch-size; memory grows with it)")
    meta = {f: TrainConfig.__dataclass_fields__[f].metadata for f in SET_OPTIONS}
    for f, md in meta.items():
        e.add_argument(flag_name(f, md), dest=f, default=None, metavar=md.get("metavar"),
                       help=f"{md.get('help', '')} (--data of another set)".replace("%", "%%"))
    add_precision_flag(e)
    e.set_defaults(fn=run)


def run(args) -> int:
    from ..config import check_values
    from ..data.sources import DataOptions
    from ..evaluation import format_report
    from ..pipeline import evaluate_and_report
    options = DataOptions(**check_values({f: getattr(args, f) for f in SET_OPTIONS if getattr(args, f) is not None}))
    m = evaluate_and_report(args.run, data=args.data, split=args.split, output=args.output, device=args.device,
                            batch_size=args.batch_size, data_root=args.data_root, precision=args.precision,
                            options=options)
    print(format_report(m))
    files = "per_label.csv" if m.get("task") == "multi" else "per_class.csv, confusion_matrix.csv/.png"
    print(f"written to {m['output_dir']}/ (metrics.json, {files})")
    print(f"report: {m['report']}")
    return 0
