"""Pin and record the numerical environment of a training job.

Determinism needs four things fixed before the first kernel runs: the CPU
kernels' instruction set (``nasforge.numerics``, set when nasforge is
imported), the thread count (1 and 2 threads give different sums),
deterministic algorithms, and on CUDA the cuBLAS workspace and no TF32. What
we fix we also record, so a table says what produced it. On a CPU nothing
host-specific (the CPU's name, times) goes in: any x86-64 CPU must write the
same bytes. On CUDA the GPU model does go in: there the promise is per GPU
model, since each generation runs other kernels.
"""

from __future__ import annotations

import os
import platform
import subprocess

import torch

import nasforge
from nasforge import numerics
from nasforge.errors import InputError, MachineError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def pin(threads: int) -> None:
    """Fix the kernels' instruction set, threads and deterministic kernels for this process."""
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    numerics.check_cpu()
    expected = numerics.ATEN_CAPABILITY.get(numerics.level())
    actual = torch.backends.cpu.get_cpu_capability()
    if expected is not None and actual != expected:
        raise MachineError(
            f"torch runs its CPU kernels at {actual}, not {expected} as {numerics.ENV}={numerics.level()} needs: "
            f"either this CPU lacks {expected} ({numerics.ENV}=native builds bytes of this CPU alone), or torch "
            f"ran a kernel before nasforge pinned ATEN_CPU_CAPABILITY (import nasforge before torch)")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    _deterministic_algorithms()
    # Deterministic mode also NaN-fills every new allocation (a guard for kernels
    # that read uninitialised memory; none of ours do). It cost 28% of a CPU step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # NATS-Bench trained in true fp32; TF32 would change every number on Ampere and later.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True)`` without its import of torch._inductor (1-2 s of
    every train job, to set a flag only torch.compile reads; nasforge compiles nothing)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a torch without the internal setter: the public call, import and all
        torch.use_deterministic_algorithms(True)
    else:
        setter(True, warn_only=False)
    if not torch.are_deterministic_algorithms_enabled():
        raise MachineError("torch did not enable deterministic algorithms; results would not be reproducible")


def describe(device: torch.device) -> dict[str, str]:
    """What produced a table: library versions, numeric settings, threads; the GPU model and driver on
    CUDA. Free of the CPU's name, so that any x86-64 CPU writes the same bytes (``host`` has it)."""
    info = {
        "nasforge": nasforge.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "None",
        "threads": str(torch.get_num_threads()),
        "device_type": device.type,
        "machine": platform.machine(),
        **{f"numerics.{k}": v for k, v in numerics.describe().items()},
    }
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
        info["driver"] = _nvidia_driver()
    else:
        info["device"] = "cpu"
        info["driver"] = "None"
    return info


def host() -> dict[str, str]:
    """The machine a job ran on: for measured tables only, which differ run to run anyway."""
    flags = numerics.cpu_flags() or set()
    return {"cpu": numerics.cpu_model(),
            "cpu_extensions": " ".join(f for f in ("sse4_1", "avx", "avx2", "fma", "avx512f") if f in flags)}


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
