"""convclass train"""
from ..errors import ConvclassError
from .common import add_config_flags, config_from_args, flag_overrides


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model; writes runs/<name>/")
    p.add_argument("--resume", metavar="RUN", help="continue the run folder RUN from its last checkpoint with its "
                   "saved options; only --epochs, --patience, --quiet, --threads, --workers, --device, --report, "
                   "--eval-batch-size, --val-every and --compile may change (default: start a new run)")
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


def run(args) -> int:
    import os
    over = flag_overrides(args)  # a mistyped option fails here, in well under a second, before anything is read
    if args.resume and args.config:
        raise ConvclassError(f"--resume {args.resume} continues with its saved config.yaml; drop --config (for other "
                             f"options start a new run: --weights {args.resume}/best.pt --config ...)")
    if args.nproc and "LOCAL_RANK" not in os.environ:
        from ..pipeline import Launch, launch
        how = Launch(args.nproc, args.nnodes, args.node_rank, args.rdzv_endpoint, args.max_restarts)
        new_one_node_run = not args.resume and args.nnodes == "1"
        return launch(how, args.argv[args.argv.index("train") + 1:],
                      config_from_args(args) if new_one_node_run else None)
    from ..pipeline import restarted_run, train_and_report
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if not args.resume and restarts and (again := restarted_run(config_from_args(args), restarts)):
        args.resume, over = str(again), {k: v for k, v in over.items() if k == "quiet"}
    if args.resume:
        # Each option given is applied or refused by config.resume_overrides; a resumed run prints unless --quiet.
        res = train_and_report(resume=args.resume, **{"quiet": False, **over})
    else:
        from ..tuning import resolve_auto_lr
        res = train_and_report(resolve_auto_lr(config_from_args(args)))  # --lr auto: the value goes to config.yaml
    if res.test_metrics:  # under DDP only rank 0 evaluates and speaks
        m = res.test_metrics
        score = f"test mAP: {m['map']:.4f}" if m.get("task") == "multi" else f"test accuracy: {m['accuracy']:.4f}"
        print(f"{score}  run folder: {res.run_dir}")
    return 0
