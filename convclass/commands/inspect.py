"""convclass inspect"""


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="class counts, sizes, broken files, duplicates and train/test leakage")
    p.add_argument("data", help="built-in name, folder, or CSV of path,label (as for train --data)")
    p.add_argument("--data-root", default="~/.cache/convclass")
    p.add_argument("--val-split", type=float, default=0.1, help="as for train, when the data has no val split")
    p.add_argument("--test-split", type=float, default=0.2, help="as for train, when the data has no test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--near-distance", type=int, default=6,
                   help="bits of 64 two perceptual hashes may differ by to count as near-duplicates")
    p.add_argument("--output", help="folder for inspect.json, duplicates.csv and the PNGs "
                                    "(default runs/inspect-NAME)")
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..inspection import format_inspection, inspect_data
    r = inspect_data(args.data, data_root=args.data_root, val_split=args.val_split, test_split=args.test_split,
                     seed=args.seed, output=args.output, near_distance=args.near_distance)
    print(format_inspection(r))
    return 0
