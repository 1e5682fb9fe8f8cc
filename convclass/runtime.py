"""Process-level settings that make CPU training faster."""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["release_free_memory", "short_openmp_spin", "tune_cpu_allocator"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc malloc.h
_tuned = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the heap instead of returning it to the OS (glibc only).

    glibc serves every allocation over 32 MB with a fresh mmap and unmaps it on free, so each training step
    maps its large activation and gradient buffers anew. Serving them from the heap, never trimmed, lets the
    next step reuse them: 1.26x training img/s for the airbench net, 1.5x for ResNet-18 on 2 cores
    (bench/cpu_choices.py). The process keeps up to 2 GB of freed memory; CONVCLASS_DEFAULT_MALLOC=1 turns
    this off. Returns whether it applied."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("CONVCLASS_DEFAULT_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # musl or another libc: leave the allocator alone
        return False
    _tuned = bool(ok)
    return _tuned


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the OS (glibc malloc_trim), where tune_cpu_allocator kept them.

    Called when a run's working set changes shape (a new progressive size, the backbone unfreezing): blocks sized
    for the last phase seldom fit the next one's, so without this the heap grows by a phase's worth each time
    (EfficientNet-Lite0 fine-tune, 160 -> 192 -> 224 px). Costs one round of page faults for the next step.
    Returns whether it ran."""
    if not _tuned:
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


# GNU OpenMP (PyTorch's Linux wheels) lets a thread that waits at the end of a parallel region spin 300,000 times
# before it sleeps; 1,000 is libgomp's own choice when it sees more threads than CPUs.
SHARED_CPU_SPINCOUNT = "10000"


def short_openmp_spin() -> bool:
    """Let waiting OpenMP threads sleep after a short spin (GOMP_SPINCOUNT=10000) instead of a long one.

    On a CPU shared with other processes a training step's two threads rarely hold both cores at once; at every
    barrier of the hundreds per step the thread that arrived first spins through its time slice while the other
    waits to be scheduled. Measured on a shared 2-core VM (load 5-7), 2 threads: cnn3 at 47-109 img/s as is,
    219-315 with the short spin (1 thread: 182-199); a `--recipe fast` epoch of 4,000 images 150-153 s -> 99-107 s
    (same numbers: the threads compute the same thing); bench/throughput.py measures it against a plain loop. Applies only before torch is
    imported (libgomp reads the setting when it loads) and only when the user set neither GOMP_SPINCOUNT nor
    OMP_WAIT_POLICY (OMP_WAIT_POLICY=ACTIVE brings the long spin back). Returns whether it applied."""
    if "torch" in sys.modules or any(k in os.environ for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")):
        return False
    os.environ["GOMP_SPINCOUNT"] = SHARED_CPU_SPINCOUNT
    return True
