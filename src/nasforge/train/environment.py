"""Pin and record the numerical environment of a training job.

Determinism needs three things fixed before the first kernel runs: the thread
count (1 and 2 threads give different sums), deterministic algorithms, and on
CUDA the cuBLAS workspace and no TF32. What we fix we also record, so a table
says what produced it. Nothing host-specific (names, times) goes in: two runs
on the same machine kind must write the same bytes.
"""

from __future__ import annotations

import os
import platform
import subprocess

import torch

import nasforge


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def pin(threads: int) -> None:
    """Fix threads and deterministic kernels for this process."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also NaN-fills every new allocation (a guard for kernels
    # that read uninitialised memory; none of ours do). It cost 28% of a CPU step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # NATS-Bench trained in true fp32; TF32 would change every number on Ampere and later.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def describe(device: torch.device) -> dict[str, str]:
    """What produced a table: library versions, device model, driver, threads."""
    info = {
        "nasforge": nasforge.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "None",
        "threads": str(torch.get_num_threads()),
        "device_type": device.type,
        "machine": platform.machine(),
    }
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
        info["driver"] = _nvidia_driver()
    else:
        info["device"] = _cpu_model()
        info["driver"] = "None"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
