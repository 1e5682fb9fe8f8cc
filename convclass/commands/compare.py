"""convclass compare"""


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="runs side by side: metrics table and overlaid curves (PNG)")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--output", help="PNG of the overlaid curves (default: compare-RUN1-vs-RUN2.png next to the first run)")
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..reporting.compare import compare_runs, format_comparison
    print(format_comparison(compare_runs(args.runs, output=args.output)))
    return 0
