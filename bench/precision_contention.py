"""bf16 against fp32 training steps on the CPU, alone and with a second training job on the same cores.

`--precision auto` picks bf16 autocast on a CPU with bf16 units because, alone on the machine, it trains convnets
~1.3-1.9x faster. A user who starts two jobs on a small CPU oversubscribes it; this bench measures whether bf16
keeps its lead then. Each arm is a fresh process (2 threads) timing Adam steps on random tensors; in the
"contended" arms a second process (also 2 threads) trains the same model for the whole arm, in the arm's own
precision (`--rival same`: two runs that both took `auto`'s choice) or in fp32 (`--rival fp32`). Arms alternate
over the rounds; medians of the per-arm median step times are printed with the ratios.

    .venv/bin/python bench/precision_contention.py --rounds 2 --rival same
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

CHILD = r"""
import sys, time
model_name, precision, batch, size, steps = sys.argv[1:6]
batch, size, steps = int(batch), int(size), int(steps)
import torch, torch.nn.functional as F
from convclass.models import create_model
torch.set_num_threads(2)
torch.manual_seed(0)
args = {"widths": "64,256,256"} if model_name == "airbench" else {}
model = create_model(model_name, 10, 3, size, **args).to(memory_format=torch.channels_last)
x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (batch,))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
ts = []
forever = steps <= 0
i = 0
while forever or i < steps + 2:
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if i >= 2:  # the first steps allocate and pick kernels
        ts.append(time.perf_counter() - t)
    i += 1
ts.sort()
print(ts[len(ts) // 2] * 1000)
"""


def step_ms(model: str, precision: str, batch: int, size: int, steps: int, contended: bool, rival_prec: str) -> float:
    rival = None
    if contended:
        # the other job: the same net, training until this arm ends
        rival_prec = precision if rival_prec == "same" else rival_prec
        rival = subprocess.Popen([sys.executable, "-c", CHILD, model, rival_prec, str(batch), str(size), "0"],
                                 stdout=subprocess.DEVNULL)
        time.sleep(8)  # let it import torch and reach its steady state before the arm is timed
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, model, precision, str(batch), str(size), str(steps)],
                             capture_output=True, text=True, check=True).stdout
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn6")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rival", choices=["same", "fp32"], default="same",
                    help="precision of the second job: the measured arm's own (default), or fp32")
    a = ap.parse_args()
    print_machine()
    arms = [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]
    res: dict[tuple[str, bool], list[float]] = {arm: [] for arm in arms}
    for r in range(a.rounds):
        order = arms if r % 2 == 0 else arms[::-1]  # alternate, so a drift of the VM hits both arms alike
        for prec, cont in order:
            ms = step_ms(a.model, prec, a.batch, a.size, a.steps, cont, a.rival)
            res[(prec, cont)].append(ms)
            print(f"round {r + 1}: {prec:4s} {'with a second job' if cont else 'alone':17s} {ms:8.1f} ms/step",
                  flush=True)
    med = {arm: statistics.median(v) for arm, v in res.items()}
    print(f"\n{a.model}, batch {a.batch} at {a.size} px, Adam, channels_last, 2 threads per process; "
          f"median ms per training step over {a.rounds} rounds; the second job: {a.rival}")
    for cont in (False, True):
        fp, bf = med[("fp32", cont)], med[("bf16", cont)]
        print(f"{'with a second job' if cont else 'alone':17s} fp32 {fp:8.1f}  bf16 {bf:8.1f}  "
              f"bf16 speed-up {fp / bf:.2f}x")


if __name__ == "__main__":
    main()
