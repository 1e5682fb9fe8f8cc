"""convclass train"""
from .common import add_config_flags, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model; writes runs/<name>/")
    p.add_argument("--resume", metavar="RUN", help="continue runs/<name> from its last checkpoint")
    add_config_flags(p)
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..training import train
    if args.resume:
        res = train(resume=args.resume, epochs=args.epochs, quiet=bool(args.quiet))
    else:
        res = train(config_from_args(args))
    print(f"test accuracy: {res.test_metrics['accuracy']:.4f}  run folder: {res.run_dir}")
    return 0
