"""The machine a benchmark ran on, printed with every figure (this machine is shared and noisy)."""
from __future__ import annotations

import os
import platform


def machine_info() -> dict:
    import torch
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(),
            "load_1min": round(os.getloadavg()[0], 2)}  # > cores: other work shares the CPU, figures are noisy


def print_machine() -> dict:
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return info
