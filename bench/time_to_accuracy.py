"""Time to accuracy: train a recipe on the CIFAR-10 JPEG folder and score the full test split as it goes.

The clock starts when this script starts and includes decoding (or loading the cache), model set-up, training,
and the final test (with the recipe's test-time augmentation). After every `--eval-every` epochs the latest
weights are scored on the whole test split without TTA; those bench-only evaluations are timed and taken off
the clock, except each point's own evaluation (a run stopped there would have paid for that one).

    .venv/bin/python bench/time_to_accuracy.py --data ~/data/cifar10 --recipe fast --json runs/tta.json

`--precision fp32 bf16` runs the arms back to back in one process, each on its own clock: the shared start-up
(imports, decoding once) plus its own time. The first arm also pays one-time warm-ups (lazy imports, first kernel
calls) and each later arm starts with the heap the ones before kept (runtime.py), so alternate them
(`fp32 bf16 bf16 fp32`) and compare arms only within one run, as the VM's speed drifts between days.
"""
from __future__ import annotations

import time

T_START = time.perf_counter()  # before the heavy imports: they are part of what a user waits for

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

TARGETS = (0.80, 0.85, 0.90, 0.93, 0.94)


def _parse_set(items: list[str]) -> dict:
    from convclass.commands.common import parse_value
    out = {}
    for item in items:
        k, v = item.split("=", 1)
        if k == "model_args":
            out.setdefault("model_args", {}).update(dict(kv.split(":", 1) for kv in v.split(";")))
        else:
            out[k] = parse_value(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="~/data/cifar10")
    ap.add_argument("--data-root", default="~/.cache/convclass", help="where the decode cache lives")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--eval-every", type=int, default=1, help="score the test split every N epochs")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="TrainConfig overrides on top of the recipe, e.g. epochs=10 "
                         "model_args=widths:64,128,128")
    ap.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16"],
                    help="one run per value, in this order, e.g. fp32 bf16 (default: auto); CPU only, so no fp16")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from convclass.config import TrainConfig
    from convclass.data import prepare_data
    from convclass.training.recipes import with_recipe

    cfg = with_recipe(TrainConfig(), {"recipe": args.recipe, **_parse_set(args.set)})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = print_machine()
    data = prepare_data(str(Path(args.data).expanduser()), data_root=args.data_root, val_split=cfg.val_split,
                        test_split=cfg.test_split, subset=cfg.subset, seed=cfg.seed)
    t_data = time.perf_counter() - T_START
    print(f"data ready after {t_data:.1f}s: {data.summary()}", flush=True)
    arms = []
    for precision in args.precision:
        print(f"\n== precision {precision}", flush=True)
        arms.append(run_arm(cfg.update(precision=precision), data, t_data, args.eval_every))
    if len(arms) > 1:
        print(f"\n{'precision':>10} {'resolved':>9} {'minutes':>8} {'test acc':>9} {'peak MB':>8}")
        for a in arms:
            final = a["points"][-1]
            print(f"{a['requested']:>10} {a['precision']:>9} {final['minutes']:8.2f} {final['test_acc']:9.2%} "
                  f"{a['peak_rss_mb']:8.0f}")
        print(f"wall-time ratio {arms[-1]['precision']}/{arms[0]['precision']}: "
              f"{arms[-1]['points'][-1]['minutes'] / arms[0]['points'][-1]['minutes']:.2f}")
    if args.json:
        out = {"machine": info, "data_ready_s": t_data, **(arms[0] if len(arms) == 1 else {"arms": arms})}
        Path(args.json).write_text(json.dumps(out, indent=1))


def _reset_peak_rss() -> None:
    """Start a new peak-RSS count (Linux: VmHWM), so each arm reports its own, not the largest so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB; the whole process


def run_arm(cfg, data, t_data: float, eval_every: int) -> dict:
    """One training run on its own clock: the shared start-up (imports, decoding) plus its own time, less the
    bench-only evaluations."""
    from convclass import train
    from convclass.checkpoint import load_checkpoint
    from convclass.models import create_model
    from convclass.precision import resolve_precision
    from convclass.training.fit import validate

    cpu = torch.device("cpu")
    with warnings.catch_warnings():  # the run itself warns of emulated bf16; once is enough
        warnings.simplefilter("ignore")
        precision = resolve_precision(cfg.precision, cpu)  # the bench's own evaluations use the run's arithmetic
    _reset_peak_rss()
    t_arm = time.perf_counter() - t_data  # minutes count from here, start-up included
    off_clock = [0.0]  # seconds spent on bench-only evaluations
    points: list[dict] = []

    def score(row: dict, run_dir: Path) -> bool:
        if row["epoch"] % eval_every:
            return False
        t0 = time.perf_counter()
        ck = load_checkpoint(run_dir / "last.pt")
        model = create_model(ck["arch"], **ck["arch_args"])
        model.load_state_dict(ck["model_state"])
        m, _ = validate(model, data.test, data, cpu, 256, precision=precision)
        spent = time.perf_counter() - t0
        minutes = (t0 - t_arm - off_clock[0] + spent) / 60
        off_clock[0] += spent
        points.append({"epoch": row["epoch"], "minutes": minutes, "test_acc": m["acc"], "tta": "none",
                       "eval_s": spent, "train_img_s": len(data.train) / row["seconds"]})
        print(f"  epoch {row['epoch']}: {minutes:.2f} min  test {m['acc']:.2%} (no TTA, eval {spent:.0f}s)  "
              f"epoch {row['seconds']:.0f}s", flush=True)
        return False

    with tempfile.TemporaryDirectory() as runs:
        res = train(cfg.update(device="cpu", report=False, quiet=False, runs_dir=runs, name="tta"),
                    callbacks=[score], prepared=data)
    total_min = (time.perf_counter() - t_arm - off_clock[0]) / 60
    points.append({"epoch": len(res.history), "minutes": total_min, "test_acc": res.test_metrics["accuracy"],
                   "tta": res.test_metrics.get("tta", "none"), "final": True})
    print(f"\n{'minutes':>8} {'test acc':>9}  view ({precision})")
    for p in points:
        view = f"final, TTA {p['tta']}" if p.get("final") else f"epoch {p['epoch']}"
        print(f"{p['minutes']:8.2f} {p['test_acc']:9.2%}  {view}")
    reached = {}
    for t in TARGETS:
        hit = next((p for p in points if p["test_acc"] >= t), None)
        reached[f"{t:.0%}"] = None if hit is None else hit["minutes"]
        print(f"time to {t:.0%}: " + ("not reached" if hit is None else f"{hit['minutes']:.2f} min"))
    peak_mb = _peak_rss_mb()
    print(f"peak RSS of this arm: {peak_mb:.0f} MB")
    return {"requested": cfg.precision, "precision": precision, "config": res.config.to_dict(), "points": points,
            "time_to": reached, "peak_rss_mb": peak_mb}

if __name__ == "__main__":
    main()
