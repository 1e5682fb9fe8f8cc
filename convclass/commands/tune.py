"""convclass tune"""
from .common import add_config_flags, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("tune", help="Optuna sweep stored in a database; writes best.yaml for train --config")
    p.add_argument("--trials", type=int, default=None, metavar="N", help="trials this process runs (default: 20, "
                                                                          "or no limit with --timeout)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop starting trials after this many seconds (default: no limit)")
    p.add_argument("--study", help="study name; re-running continues it (default: <data>-<model>)")
    p.add_argument("--storage", metavar="URL", help="sqlite:///FILE, or postgresql://user:pw@host/db to share a "
                                                   "study across machines (default: sqlite:///<runs-dir>/tune.db)")
    p.add_argument("--space", metavar="YAML", help="search space file (see convclass/tuning/space.py) (default: "
                                                  "the model's default space)")
    p.add_argument("--param", action="append", metavar="NAME=SPEC", help="searched option, LOW:HIGH[:log] or "
                   "A,B,C, replacing or adding to the --space file or the default space (repeatable); a single "
                   "value fixes the option (default: none)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random"],
                   help="how trials are drawn: Optuna's TPE or at random (default: %(default)s)")
    p.add_argument("--pruner", default="median", choices=["median", "none"],
                   help="median: stop a trial whose val_acc falls below the median of earlier trials at that epoch "
                        "(default: %(default)s)")
    p.add_argument("--sampler-seed", type=int, default=None, metavar="N", help="seed of the sampler; each trial "
                   "draws from (seed, trial number), so processes sharing a study draw different trials and a "
                   "repeat of the study draws the same ones (default: random)")
    p.add_argument("--heartbeat", type=int, default=10, metavar="SECONDS", help="seconds between a running "
                   "trial's heartbeats; a trial silent for 3x this long is marked FAIL (its process died) "
                   "(default: %(default)s)")
    p.add_argument("--output", metavar="DIR", help="folder for best.yaml and the plots (default: "
                                                  "<runs-dir>/tune-<study>)")
    add_config_flags(p)
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..tuning import default_space, parse_param_flag, parse_space_file, resolve_auto_lr, tune
    cfg = config_from_args(args)
    space = parse_space_file(args.space) if args.space else default_space(cfg.model)
    for text in args.param or []:
        p = parse_param_flag(text)
        space = [q for q in space if q.name != p.name] + [p]
    if all(p.name != "lr" for p in space):
        cfg = resolve_auto_lr(cfg)
    trials = args.trials if (args.trials or args.timeout) else 20
    res = tune(cfg, trials=trials, timeout=args.timeout, study=args.study, storage=args.storage, space=space,
               sampler=args.sampler, pruner=args.pruner, seed=args.sampler_seed, heartbeat=args.heartbeat,
               output=args.output)
    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(res.states.items()))
    print(f"study {res.study_name}: {res.n_trials} trials ({states}); best val_acc "
          + (f"{res.best_value:.4f} (trial {res.best_trial})  config: {res.best_config}" if res.best_config
             else "none yet") + f"  plots: {res.output}")
    return 0
