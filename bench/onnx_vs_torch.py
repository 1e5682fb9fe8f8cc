"""Prediction throughput by runtime: PyTorch eager fp32 (and bf16 where the CPU has AVX-512 BF16 or AMX), ONNX
Runtime fp32 and int8, OpenVINO fp32; CIFAR-style ResNet-18 at batch 1 and 64, on 2 CPU threads.

Every arm runs in this one process and the arms alternate call by call, so machine noise hits them alike; medians
are printed side by side. Each timed call is one forward pass of a float32 (B, 3, 32, 32) batch (preprocessing
is the same for every runtime and left out). The ONNX, int8 and OpenVINO models are written by convclass's own
exporters and run in the configuration `convclass predict/serve --runtime ...` uses. Correctness is checked on the
batch-64 input: an fp32 arm must give PyTorch's probabilities within 1e-4 (the export parity limit); int8 shows
its top-1 agreement with PyTorch instead (random weights: a trained model's accuracy drop is `export --int8`'s).

    python bench/onnx_vs_torch.py                # --threads 2 --rounds 12
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

BATCHES = (1, 64)


def build_arms(tmp: Path, threads: int) -> tuple[dict, dict]:
    """name -> fn(x float32 numpy) -> logits, for every runtime this machine runs; and the versions used."""
    import onnxruntime
    import openvino
    import torch

    from convclass.data.preprocess import Preprocess
    from convclass.export.metadata import build_metadata
    from convclass.export.onnx_export import export_onnx, quantize_int8
    from convclass.export.onnx_runtime import OnnxModel
    from convclass.export.openvino_export import export_openvino
    from convclass.export.parity import _synthetic
    from convclass.models import create_model
    from convclass.precision import CPU_BF16_FLAGS, cpu_flags

    torch.manual_seed(0)
    model = create_model("resnet18", 10, 3, 32).eval()
    pre = Preprocess(img_size=32, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    meta = build_metadata({"arch": "resnet18", "classes": [str(i) for i in range(10)]}, pre, "bench/resnet18.pt",
                          runtime="onnx", precision="fp32", batch="dynamic")
    export_onnx(model, tmp / "fp32.onnx", 3, 32, True, meta)
    quantize_int8(tmp / "fp32.onnx", tmp / "int8.onnx", _synthetic(256, 3, 32), pre, None,
                  dict(meta, precision="int8"))
    probe = _synthetic(64, 3, 32)
    with torch.inference_mode():
        ref = model(pre.to_input(probe)).softmax(1).numpy()
    export_openvino(model, tmp / "model.xml", 3, 32, dict(meta, runtime="openvino"), ref, probe)
    from convclass.export.openvino_runtime import OpenVinoModel

    def torch_arm(dtype):
        def run(x):
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                return model(torch.from_numpy(x)).float().numpy()
        return run

    arms = {"PyTorch eager fp32": torch_arm(None)}
    if cpu_flags() & set(CPU_BF16_FLAGS):  # elsewhere bf16 is emulated, hundreds of times slower: not worth timing
        arms["PyTorch eager bf16"] = torch_arm(torch.bfloat16)
    arms["ONNX Runtime fp32"] = OnnxModel(tmp / "fp32.onnx", threads=threads)._logits
    arms["ONNX Runtime int8"] = OnnxModel(tmp / "int8.onnx", threads=threads)._logits
    arms["OpenVINO fp32"] = OpenVinoModel(tmp / "model.xml", threads=threads)._logits
    versions = {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__.split("-")[0]}
    return arms, versions


def _softmax(z):
    import numpy as np
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=12, help="timed calls per arm at batch 64 (x4 at batch 1)")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        arms, versions = build_arms(Path(tmp), args.threads)
        rng = np.random.default_rng(0)
        xs = {b: rng.standard_normal((b, 3, 32, 32), dtype=np.float32) for b in BATCHES}
        ref = _softmax(arms["PyTorch eager fp32"](xs[64]))
        check = {}
        for name, fn in arms.items():
            p = _softmax(fn(xs[64]))
            agree = float((p.argmax(1) == ref.argmax(1)).mean())
            diff = float(np.abs(p - ref).max())
            check[name] = (f"top-1 agreement {agree:.0%}" if "int8" in name
                           else f"max Δprob {diff:.1e}" + ("" if diff <= 1e-4 else " WRONG"))
        times = {(name, b): [] for name in arms for b in BATCHES}
        for b in BATCHES:
            rounds = args.rounds * (4 if b == 1 else 1)  # batch 1 is quick and noisier: more calls
            for i in range(args.warmup + rounds):
                for name, fn in arms.items():  # alternate: shared noise
                    t = time.perf_counter()
                    fn(xs[b])
                    if i >= args.warmup:
                        times[(name, b)].append(time.perf_counter() - t)
    print_machine()
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"model: resnet18 (CIFAR stem, 32 px, random weights), {args.threads} threads, arms alternating; "
          f"medians of {args.rounds * 4} calls at batch 1 and {args.rounds} at batch 64 after {args.warmup} warm-up")
    base = {b: statistics.median(times[("PyTorch eager fp32", b)]) for b in BATCHES}
    print(f"| runtime | batch 1: ms | batch 1: images/s | batch 64: ms | batch 64: images/s | vs PyTorch (b1 / b64) "
          f"| check |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in arms:
        med = {b: statistics.median(times[(name, b)]) for b in BATCHES}
        print(f"| {name} | {med[1] * 1e3:.2f} | {1 / med[1]:,.0f} | {med[64] * 1e3:.1f} | {64 / med[64]:,.0f} | "
              f"{base[1] / med[1]:.2f}x / {base[64] / med[64]:.2f}x | {check[name]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
