"""convclass lr-find"""
from .common import add_config_flags, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="LR range test: plot loss against learning rate and suggest one")
    p.add_argument("--start-lr", type=float, default=1e-7, metavar="LR",
                   help="first learning rate of the ramp (default: %(default)g)")
    p.add_argument("--end-lr", type=float, default=10.0, metavar="LR", help="last learning rate (the test stops "
                   "earlier if the loss explodes) (default: %(default)g)")
    p.add_argument("--num-iter", type=int, default=200, metavar="N", help="mini-batches in the ramp "
                                                                          "(default: %(default)s)")
    p.add_argument("--method", default="valley", choices=["valley", "steepest"],
                   help="which point to suggest: the valley of the loss curve or its steepest descent "
                        "(default: %(default)s)")
    p.add_argument("--plot", metavar="PNG", help="where to write the plot (default: "
                                                 "<runs-dir>/lr-find-<data>-<model>.png)")
    add_config_flags(p)
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..tuning import lr_find
    cfg = config_from_args(args)
    res = lr_find(cfg.update(lr=1e-3) if isinstance(cfg.lr, str) else cfg, plot=args.plot,
                  start_lr=args.start_lr, end_lr=args.end_lr, num_iter=args.num_iter, method=args.method)
    end = "loss exploded" if res.stopped_early else "reached --end-lr"
    print(f"scanned lr {res.lrs[0]:.2g} .. {res.lrs[-1]:.2g} in {len(res.lrs)} steps ({end})")
    print(f"steepest descent: {res.steepest:.3g}   valley: {res.valley:.3g}")
    print(f"suggested lr: {res.suggestion:.3g}  (train with --lr {res.suggestion:.3g}, or --lr auto)  "
          f"plot: {res.plot}")
    return 0
