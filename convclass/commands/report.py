"""convclass report"""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="(re)draw a run's figures and its self-contained report.html")
    p.add_argument("run", metavar="RUN", help="a run folder (runs/NAME) or an evaluate output folder")
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..reporting import build_report
    print(f"wrote {build_report(args.run)}")
    return 0
