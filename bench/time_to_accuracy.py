"""Time to accuracy: train a recipe on the CIFAR-10 JPEG folder and score the full test split as it goes.

The clock starts when this script starts and includes decoding (or loading the cache), model set-up, training,
and the final test (with the recipe's test-time augmentation). After every `--eval-every` epochs the latest
weights are scored on the whole test split without TTA; those bench-only evaluations are timed and taken off
the clock, except each point's own evaluation (a run stopped there would have paid for that one).

    .venv/bin/python bench/time_to_accuracy.py --data ~/data/cifar10 --recipe fast --json runs/tta.json
"""
from __future__ import annotations

import time

T_START = time.perf_counter()  # before the heavy imports: they are part of what a user waits for

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
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
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from convclass.config import TrainConfig
    from convclass.data import prepare_data
    from convclass.models import create_model
    from convclass.checkpoint import load_checkpoint
    from convclass import train
    from convclass.training.fit import validate
    from convclass.training.recipes import with_recipe

    cfg = with_recipe(TrainConfig(), {"recipe": args.recipe, **_parse_set(args.set)})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = print_machine()
    data = prepare_data(str(Path(args.data).expanduser()), data_root=args.data_root, val_split=cfg.val_split,
                        test_split=cfg.test_split, subset=cfg.subset, seed=cfg.seed)
    t_data = time.perf_counter() - T_START
    print(f"data ready after {t_data:.1f}s: {data.summary()}", flush=True)
    cpu = torch.device("cpu")
    off_clock = [0.0]  # seconds spent on bench-only evaluations
    points: list[dict] = []

    def score(row: dict, run_dir: Path) -> bool:
        if row["epoch"] % args.eval_every:
            return False
        t0 = time.perf_counter()
        ck = load_checkpoint(run_dir / "last.pt")
        model = create_model(ck["arch"], **ck["arch_args"])
        model.load_state_dict(ck["model_state"])
        m, _ = validate(model, data.test, data, cpu, 256)
        spent = time.perf_counter() - t0
        minutes = (t0 - T_START - off_clock[0] + spent) / 60
        off_clock[0] += spent
        points.append({"epoch": row["epoch"], "minutes": minutes, "test_acc": m["acc"], "tta": "none",
                       "eval_s": spent, "train_img_s": len(data.train) / row["seconds"]})
        print(f"  epoch {row['epoch']}: {minutes:.2f} min  test {m['acc']:.2%} (no TTA, eval {spent:.0f}s)  "
              f"epoch {row['seconds']:.0f}s", flush=True)
        return False

    with tempfile.TemporaryDirectory() as runs:
        res = train(cfg.update(device="cpu", report=False, quiet=False, runs_dir=runs, name="tta"),
                    callbacks=[score], prepared=data)
    total_min = (time.perf_counter() - T_START - off_clock[0]) / 60
    points.append({"epoch": len(res.history), "minutes": total_min, "test_acc": res.test_metrics["accuracy"],
                   "tta": res.test_metrics.get("tta", "none"), "final": True})
    print(f"\n{'minutes':>8} {'test acc':>9}  view")
    for p in points:
        view = f"final, TTA {p['tta']}" if p.get("final") else f"epoch {p['epoch']}"
        print(f"{p['minutes']:8.2f} {p['test_acc']:9.2%}  {view}")
    reached = {}
    for t in TARGETS:
        hit = next((p for p in points if p["test_acc"] >= t), None)
        reached[f"{t:.0%}"] = None if hit is None else hit["minutes"]
        print(f"time to {t:.0%}: " + ("not reached" if hit is None else f"{hit['minutes']:.2f} min"))
    import resource
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"peak RSS of this process: {peak_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "config": res.config.to_dict(), "points": points,
                                               "time_to": reached, "data_ready_s": t_data,
                                               "peak_rss_mb": peak_mb}, indent=1))


if __name__ == "__main__":
    main()
