"""Issue 20's classic experiments, each one `convclass` command from a seed config, printed as a README table row.

    .venv/bin/python bench/classics.py --list                    # the experiments and their commands
    .venv/bin/python bench/classics.py mnist-shallow             # the published protocol (here 5-fold cv)
    .venv/bin/python bench/classics.py cifar10-cnn3-keras --quick   # 1 epoch on 256 images: checks the path only

A run calls the command of its row (plus --runs-dir/--name, so its results can be found) through convclass's CLI
entry point, its imports inside the clock: the wall time is what a user of the command waits for, decoding
included. The row: experiment | published | measured |
wall time | command. --quick rows say so in the measured column; never put one in the README.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "examples" / "seeds"
QUICK_IMAGES = 256
TINY50 = "python examples/seeds/make_tiny50.py ~/data/tiny-imagenet-200"
FLOWERS = "docs/datasets.md, Flowers-102 (GitHub 3ba2ii/Flower-Classifier)"
FLOWERS64 = ("python examples/seeds/make_flowers102.py IMAGES imagelabels.mat setid.mat ~/data/flowers102-64 "
             "(docs/datasets.md, Flowers-102 at 64x64)")


@dataclass(frozen=True)
class Experiment:
    seed: str                       # examples/seeds/<seed>.yaml
    data: str                       # the --data of the published protocol (a folder, or a built-in name)
    published: str                  # the published figure, as the issue gives it
    folds: int = 0                  # > 0: `convclass cv --folds N` (the published protocol is k-fold)
    flags: tuple[str, ...] = ()     # options on top of the seed (an optimizer compared, the offline weights)
    get: str = "see docs/datasets.md"   # how to put the data in place

    def command(self, data: str | None = None) -> list[str]:
        head = ["cv", "--folds", str(self.folds)] if self.folds else ["train"]
        return ["convclass", *head, "--config", f"examples/seeds/{self.seed}.yaml", "--data", data or self.data,
                *self.flags]


CNN5 = dict(seed="tinyimagenet50-cnn5", data="~/data/tiny50", get=f"{TINY50} ~/data/tiny50")
EXPERIMENTS = {
    "mnist-shallow": Experiment("mnist-shallow", "~/data/mnist", "97.4 % (5-fold stratified)", folds=5),
    "cifar10-cnn3-keras": Experiment("cifar10-cnn3-keras", "~/data/cifar10", "82.97 % (test)"),
    "cifar10-cnn6-keras": Experiment("cifar10-cnn6-keras", "~/data/cifar10", "86.49 % (5-fold stratified)", folds=5),
    "cifar100-deeper": Experiment("cifar100-deeper", "cifar100", "~65 % (one fold)",
                                  get="place cifar-100-python.tar.gz in ~/.cache/convclass/cifar100/"),
    "tinyimagenet50-cnn5": Experiment(**CNN5, published="62 % (Adam 1e-4)"),
    "tinyimagenet50-cnn5-adagrad": Experiment(**CNN5, published="compared with Adam's 62 %",
                                              flags=("--optimizer", "adagrad")),
    "tinyimagenet50-cnn5-rmsprop": Experiment(**CNN5, published="compared with Adam's 62 %",
                                              flags=("--optimizer", "rmsprop", "--momentum", "0")),
    "flowers102-resnet18": Experiment("flowers102-resnet18", "~/data/flowers102", "as measured (online weights)",
                                      get=FLOWERS),
    "flowers102-resnet18-offline": Experiment("flowers102-resnet18", "~/data/flowers102",
                                              "as measured (Lite0's offline weights for ResNet-18's)",
                                              flags=("--model", "efficientnet_lite0"), get=FLOWERS),
    "flowers102-64-resnet18-offline": Experiment("flowers102-resnet18", "~/data/flowers102-64",
                                                 "as measured (official split, 64x64 copy; Lite0's offline weights)",
                                                 flags=("--model", "efficientnet_lite0"), get=FLOWERS64),
    "tinyimagenet-finetune-lite0": Experiment("tinyimagenet-finetune-lite0", "~/data/tiny200",
                                              "87 % (ConvNeXt; Lite0 here)",
                                              get=f"{TINY50} ~/data/tiny200 --classes 200 --cut ''"),
}


def quick_flags(exp: Experiment) -> list[str]:
    """One short pass through the whole path: 1 epoch (1 + 1 for a staged fine-tune) on a stratified subset."""
    staged = "fine_tune:" in (SEEDS / f"{exp.seed}.yaml").read_text()
    out = ["--fine-tune", "1,1"] if staged else ["--epochs", "1"]
    return out + ["--subset", str(QUICK_IMAGES)]


def missing_data(exp: Experiment, data: str) -> str | None:
    """A one-line reason the data is not there (a path that does not exist), before minutes of start-up."""
    if "/" not in data and not data.startswith("~"):
        return None  # a built-in name: convclass itself says what to place where
    if Path(data).expanduser().exists():
        return None
    return f"{data} not found; put it in place first: {exp.get}"


def data_here(exp: Experiment) -> str:
    if "/" not in exp.data:
        return f"built-in name ({exp.get})"
    return "missing: " + exp.get if missing_data(exp, exp.data) else "yes"


def results(run: Path, folds: int) -> tuple[str, dict]:
    """(the measured column, the raw metrics) from a finished run folder."""
    if folds:
        cv = json.loads((run / "cv.json").read_text())
        mean, std = cv["mean"], cv["std"]
        text = (f"{pct(mean['accuracy'])} ± {pct(std['accuracy'])} ({cv['k']}-fold, macro F1 {mean['f1_macro']:.4f}, "
                f"macro recall {mean['recall_macro']:.4f})")
        return text, {"mean": mean, "std": std, "k": cv["k"]}
    m = json.loads((run / "test_metrics.json").read_text())
    text = (f"{pct(m['accuracy'])} (test, {m['n']} images; macro F1 {m['f1_macro']:.4f}, macro recall "
            f"{m['recall_macro']:.4f}; best epoch {m['checkpoint_epoch']})")
    return text, m


def wall(seconds: float) -> str:
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def shell(words: list[str]) -> str:
    """The command as it is typed: quoted where the shell needs it, but ~/ left bare so the shell expands it."""
    return " ".join(w if w.startswith("~/") and shlex.quote(w[2:]) == w[2:] else shlex.quote(w) for w in words)


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def row(name: str, published: str, measured: str, seconds: float, command: list[str]) -> str:
    return f"| {name} | {published} | {measured} | {wall(seconds)} | `{shell(command)}` |"


def run(name: str, data: str | None, quick: bool, runs_dir: Path, extra: list[str]) -> int:
    exp = EXPERIMENTS[name]
    shown = exp.command(data) + extra + (quick_flags(exp) if quick else [])
    why = missing_data(exp, data or exp.data)
    if why:
        print(f"error: {name}: {why}", file=sys.stderr)
        return 2
    out = runs_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"{name}: {shell(shown)}", flush=True)
    t0 = time.perf_counter()
    from convclass.cli import main as convclass  # timed: a user of the command waits for these imports too
    try:
        rc = convclass([str(REPO / w) if w.startswith("examples/") else w for w in shown[1:]]
                       + ["--runs-dir", str(out), "--name", "run"])
    except SystemExit as e:  # argparse's usage errors
        rc = e.code if isinstance(e.code, int) else 1
    seconds = time.perf_counter() - t0
    if rc != 0:
        print(f"error: {name}: the command exited with {rc} after {wall(seconds)} (its message is above)",
              file=sys.stderr)
        return rc
    measured, metrics = results(out / "run", exp.folds)
    if quick:
        measured = f"quick check only ({' '.join(quick_flags(exp))}): {measured}"
    (out / "classics.json").write_text(json.dumps({"experiment": name, "published": exp.published,
                                                   "measured": measured, "seconds": seconds, "quick": quick,
                                                   "command": shown, "metrics": metrics}, indent=1))
    print(row(name, exp.published, measured, seconds, shown))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", nargs="?", help="an experiment from --list")
    ap.add_argument("--list", action="store_true", help="print the experiments and their commands")
    ap.add_argument("--quick", action="store_true",
                    help=f"1 epoch on {QUICK_IMAGES} images (cv: as many folds as published): checks the path")
    ap.add_argument("--data", help="another copy of the experiment's data (default: the one in --list)")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "classics",
                    help="where the run folders go (default: runs/classics)")
    args, extra = ap.parse_known_args(argv)  # anything else goes to convclass, e.g. --threads 1 --workers 0
    if args.list:
        print("| experiment | published | command | data here |\n|---|---|---|---|")
        for name, exp in EXPERIMENTS.items():
            print(f"| {name} | {exp.published} | `{shell(exp.command())}` | {data_here(exp)} |")
        return 0
    if args.name not in EXPERIMENTS:
        print(f"error: unknown experiment {args.name!r}; choose one of {', '.join(EXPERIMENTS)} (--list shows "
              "them)", file=sys.stderr)
        return 2
    return run(args.name, args.data, args.quick, args.runs_dir, extra)


if __name__ == "__main__":
    sys.exit(main())
