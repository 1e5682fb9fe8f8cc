"""convclass cv"""
from .common import add_config_flags, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("cv", help="stratified K-fold cross-validation with the train options; mean ± std")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default: %(default)s)")
    add_config_flags(p)
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..pipeline import cross_validate, format_cv
    print(format_cv(cross_validate(config_from_args(args), folds=args.folds)))
    return 0
