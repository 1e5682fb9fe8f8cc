"""convclass cv"""
from ..errors import ConvclassError
from .common import add_config_flags, config_from_args, flag_overrides


def add_parser(sub) -> None:
    p = sub.add_parser("cv", help="stratified K-fold cross-validation with the train options; mean ± std")
    p.add_argument("--folds", type=int, metavar="K", help="number of folds (default: 5)")
    p.add_argument("--resume", metavar="CV_FOLDER", help="finish the cross-validation in CV_FOLDER with its saved "
                   "options and folds: scored folds are read back, a stopped fold continues from its last.pt; only "
                   "--quiet, --threads, --workers, --device, --eval-batch-size, --val-every and --compile may "
                   "change (default: start a new one)")
    add_config_flags(p)
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..pipeline import cross_validate, format_cv
    if args.resume:
        if args.config:
            raise ConvclassError(f"--resume {args.resume} continues with its saved cv_config.yaml; drop --config")
        res = cross_validate(folds=args.folds, resume=args.resume, **flag_overrides(args))
    else:
        res = cross_validate(config_from_args(args), folds=args.folds)
    print(format_cv(res))
    return 0
