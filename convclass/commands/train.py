"""convclass train"""
from pathlib import Path

from ..errors import ConvclassError
from .common import add_config_flags, config_from_args, flag_overrides


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model; writes runs/<name>/")
    p.add_argument("--resume", metavar="RUN", help="continue the run folder RUN from its last checkpoint with its "
                   "saved options; only --epochs, --patience, --quiet, --threads, --workers, --device and --report "
                   "may change (default: start a new run)")
    add_config_flags(p)
    d = p.add_argument_group("distributed (torchrun / DDP)")
    d.add_argument("--nproc", type=int, metavar="N", help="launch this many processes per node with torchrun "
                   "(DDP) (default: one process, no torchrun)")
    d.add_argument("--nnodes", default="1", metavar="N", help="nodes taking part (torchrun --nnodes), e.g. 2 "
                   "(default: 1)")
    d.add_argument("--node-rank", type=int, metavar="RANK", help="this node's rank for a static multi-node launch "
                   "(default: assigned by the rendezvous)")
    d.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="the rendezvous (node 0) for multi-node runs "
                   "(default: a free port on this machine)")
    d.add_argument("--max-restarts", type=int, default=0, metavar="N",
                   help="restart the worker group this many times after a failure, resuming from last.pt "
                        "(default: 0)")
    p.set_defaults(fn=run)


LAUNCH_FLAGS = {"--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint", "--max-restarts"}


def _without_launch_flags(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=", 1)[0] in LAUNCH_FLAGS:
            skip = "=" not in a
        else:
            out.append(a)
    return out


def _launch(args) -> int:
    """`--nproc N`: hand the run to torchrun. On one node the run folder is made here first and the workers
    are started as `train --resume RUN`, so an elastic restart continues that run from its last checkpoint."""
    import sys

    from ..config import git_commit, save_config
    from ..training.distributed import launch_torchrun
    from ..training.runs import discard_unsaved, new_run_dir
    run_dir = None
    if args.resume or args.nnodes != "1":
        argv = ["train"] + _without_launch_flags(sys.argv[sys.argv.index("train") + 1:])
    else:
        cfg = config_from_args(args)
        run_dir = new_run_dir(cfg.runs_dir, cfg.name or f"{cfg.data.rstrip('/').split('/')[-1]}-{cfg.model}")
        save_config(cfg.update(git_commit=git_commit(), world_size=args.nproc), run_dir / "config.yaml")
        argv = ["train", "--resume", str(run_dir)] + (["--quiet"] if cfg.quiet else [])
    rc = 1
    try:
        rc = launch_torchrun(argv, args.nproc, args.max_restarts, args.nnodes, args.rdzv_endpoint, args.node_rank)
        return rc
    finally:
        if rc != 0 and run_dir is not None:  # the workers failed before their first checkpoint: nothing to keep
            discard_unsaved(run_dir)


def run(args) -> int:
    import os
    over = flag_overrides(args)  # a mistyped option fails here, in well under a second, before anything is read
    if args.resume and args.config:
        raise ConvclassError(f"--resume {args.resume} continues with its saved config.yaml; drop --config (for other "
                             f"options start a new run: --weights {args.resume}/best.pt --config ...)")
    if args.nproc and "LOCAL_RANK" not in os.environ:
        return _launch(args)
    from ..training import train
    if not args.resume and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
        # An elastic restart of a plain `torchrun … train --name NAME`: continue that run, not a new one, with
        # the config.yaml these same flags wrote.
        cfg = config_from_args(args)
        if cfg.name and (Path(cfg.runs_dir) / cfg.name / "config.yaml").exists():
            args.resume, over = str(Path(cfg.runs_dir) / cfg.name), {k: v for k, v in over.items() if k == "quiet"}
    if args.resume:
        # Each option given is applied or refused by config.resume_overrides; a resumed run prints unless --quiet.
        res = train(resume=args.resume, **{"quiet": False, **over})
    else:
        from ..tuning import resolve_auto_lr
        res = train(resolve_auto_lr(config_from_args(args)))  # --lr auto: the chosen value goes to config.yaml
    if res.test_metrics:  # under DDP only rank 0 evaluates and speaks
        print(f"test accuracy: {res.test_metrics['accuracy']:.4f}  run folder: {res.run_dir}")
    return 0
