"""convclass evaluate"""
from .predict import add_precision_flag


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="metrics of a trained model on a split")
    e.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    e.add_argument("--data", help="dataset (default: the one it was trained on)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--output", help="folder for metrics.json and plots (default RUN/eval-SPLIT)")
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", "--eval-batch-size", type=int, default=None, metavar="N",
                   help="images per forward pass (default: what the run evaluated with: its --eval-batch-size, else "
                        "its training chunk, --micro-batch or --batch-size; memory grows with it)")
    add_precision_flag(e)
    e.set_defaults(fn=run)


def run(args) -> int:
    from ..evaluation import format_report
    from ..pipeline import evaluate_and_report
    m = evaluate_and_report(args.run, data=args.data, split=args.split, output=args.output, device=args.device,
                 batch_size=args.batch_size, data_root=args.data_root, precision=args.precision)
    print(format_report(m))
    print(f"written to {m['output_dir']}/ (metrics.json, per_class.csv, confusion_matrix.csv/.png)")
    print(f"report: {m['report']}")
    return 0
