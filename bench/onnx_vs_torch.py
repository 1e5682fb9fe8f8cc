"""Prediction throughput: PyTorch eager vs ONNX Runtime, CIFAR-style ResNet-18, batch 64, on 2 CPU threads.

The two runtimes alternate batch by batch in one process, so machine noise hits both alike; medians are
reported. Preprocessing is excluded (identical for both); each timed call is one forward pass of a
(64, 3, 32, 32) float32 batch. The ONNX model is written by convclass's own exporter and run in the session
configuration `convclass predict --runtime onnx` uses.

    python bench/onnx_vs_torch.py                # --threads 2 --batch 64 --rounds 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=30, help="timed batches per runtime")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import onnxruntime
    import torch

    from convclass.export.onnx_export import export_onnx
    from convclass.export.onnx_runtime import make_session
    from convclass.models import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("resnet18", 10, 3, 32).eval()
    x = torch.randn(args.batch, 3, 32, 32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        export_onnx(model, path, 3, 32, dynamic_batch=True, meta={"arch": "resnet18", "classes": [str(i) for i in range(10)],
                                                                  "img_size": 32, "channels": 3, "mean": [0.5] * 3,
                                                                  "std": [0.25] * 3})
        session = make_session(path, threads=args.threads)
    xn = x.numpy()

    def run_torch():
        with torch.inference_mode():
            return model(x).numpy()

    def run_onnx():
        return session.run(None, {"input": xn})[0]

    diff = float(np.abs(run_torch() - run_onnx()).max())
    for _ in range(args.warmup):
        run_torch()
        run_onnx()
    times = {"torch": [], "onnx": []}
    for _ in range(args.rounds):
        for name, fn in (("torch", run_torch), ("onnx", run_onnx)):   # alternate: shared noise
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print_machine()
    print(f"onnxruntime {onnxruntime.__version__}")
    print(f"model: resnet18 (CIFAR stem), batch {args.batch}, {args.threads} threads, {args.rounds} alternating "
          f"rounds after {args.warmup} warm-up; max |dlogit| torch vs onnx {diff:.1e}")
    for k in ("torch", "onnx"):
        v = sorted(times[k])
        print(f"  {k:6s} median {med[k] * 1000:7.1f} ms/batch  ({args.batch / med[k]:7.1f} images/s)  "
              f"min {v[0] * 1000:.1f}  max {v[-1] * 1000:.1f} ms")
    ratio = med["torch"] / med["onnx"]
    print(f"ONNX Runtime / PyTorch eager throughput: {ratio:.2f}x (target >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
