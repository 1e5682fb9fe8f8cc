"""The arithmetic of forward passes (`--precision`): which autocast a run, an evaluation or a prediction uses.

Autocast changes only the dtype of the ops it covers (convolutions, matmuls): parameters, gradients, optimizer
state, BatchNorm running statistics and checkpoints stay fp32. bf16 pays only where the hardware has bf16 units:
on a CPU with AVX-512 BF16 training convnets ran 1.86x faster (docs/fast.md); on an AVX2-only CPU PyTorch
emulates it, about 300x slower than fp32, so `auto` picks fp32 there.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings

import torch

from .errors import ConvclassError

__all__ = ["PRECISIONS", "autocast", "cpu_flags", "describe_precision", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of x86 bf16 units
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none, e.g. macOS); read once per process."""
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def _auto_skips_cpu_bf16() -> bool:
    # CONVCLASS_CPU_BF16=0 makes auto mean fp32 on a CPU with bf16 units: for runs that must match fp32 numbers
    # (the test suite), and where bf16 is slower (measured: 2x slower than fp32 with another job on the same cores).
    # Only auto: --precision bf16 still runs on the units, without the "no bf16 units" warning.
    return os.environ.get("CONVCLASS_CPU_BF16") == "0"


def _cpu_bf16() -> list[str]:
    return [f for f in CPU_BF16_FLAGS if f in cpu_flags()]


def _device_type(device) -> str:
    return torch.device(device).type


def resolve_precision(requested: str, device, *, amp: bool = True) -> str:
    """fp32, bf16 or fp16 for `requested` (auto|fp32|bf16|fp16) on `device`. auto: bf16 on a CPU with bf16
    units and on CUDA GPUs that support it, fp16 on older GPUs (fp32 with amp=False, the old --no-amp), else
    fp32. bf16 forced on a CPU without bf16 units runs (emulated, correctly) with a warning that it is slow."""
    if requested not in PRECISIONS:
        raise ConvclassError(f"--precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    cuda = _device_type(device) == "cuda"
    if requested == "auto":
        if cuda:
            return "fp32" if not amp else "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if _cpu_bf16() and not _auto_skips_cpu_bf16() else "fp32"
    if requested == "fp16" and not cuda:
        raise ConvclassError("--precision fp16: fp16 autocast is CUDA-only; on the CPU use --precision bf16 "
                             "(fast where the CPU has AVX-512 BF16 or AMX) or fp32")
    if requested == "bf16" and not cuda and not _cpu_bf16():
        warnings.warn("--precision bf16 on a CPU without bf16 units (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
                      "PyTorch emulates it, correct but far slower than fp32 here", stacklevel=2)
    return requested


def describe_precision(requested: str, precision: str, device) -> str:
    """The one line a run logs: what it computes in and why, e.g. `precision: bf16 autocast (CPU reports
    avx512_bf16)`."""
    cuda = _device_type(device) == "cuda"
    what = "fp32" if precision == "fp32" else f"{precision} autocast"
    if requested != "auto":
        why = f"--precision {requested}"
    elif cuda:
        why = {"bf16": "this GPU supports bf16", "fp16": "this GPU has no bf16", "fp32": "--no-amp"}[precision]
    elif precision == "bf16":
        why = f"CPU reports {' and '.join(_cpu_bf16())}"
    elif _cpu_bf16():
        why = "CONVCLASS_CPU_BF16=0"
    else:
        why = "this CPU has no bf16 units; --precision bf16 forces it"
    return f"precision: {what} ({why})"


def autocast(precision: str, device) -> contextlib.AbstractContextManager:
    """The autocast context of a resolved precision on `device`; fp32 runs as written."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=_DTYPES[precision])
