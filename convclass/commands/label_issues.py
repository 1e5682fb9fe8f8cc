"""convclass label-issues"""
from ..errors import ConvclassError
from .common import add_config_flags, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("label-issues", help="rank likely mislabelled, outlier and near-duplicate images "
                                            "(cleanlab on cross-validated probabilities); CSV, HTML, clean CSVs")
    p.add_argument("data_arg", nargs="?", metavar="DATA", help="the images to check, as for train --data")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default: %(default)s)")
    p.add_argument("--from-cv", metavar="CV_FOLDER", help="use the folds of an earlier `convclass cv` run instead of "
                                                          "training new ones (its data must be unchanged)")
    p.add_argument("--leave-out", default="label", metavar="KINDS",
                   help="issue kinds without_issues.csv leaves out: label, outlier, near_duplicate, comma-separated "
                        "(default: %(default)s; outliers are unusual images, not wrong ones: review them first)")
    add_config_flags(p)
    p.set_defaults(fn=run)


def run(args) -> int:
    if args.data_arg is not None:
        if args.data is not None and args.data != args.data_arg:
            raise ConvclassError(f"two data sets given: {args.data_arg} and --data {args.data}; pass one")
        args.data = args.data_arg
    from ..pipeline.label_issues import find_label_issues, format_label_issues
    print(format_label_issues(find_label_issues(config_from_args(args), folds=args.folds, from_cv=args.from_cv,
                                                       leave_out=args.leave_out)))
    return 0
