"""Pin the CPU kernels' instruction set, so a rebuild gives the same bytes on any x86-64 CPU.

torch picks its CPU kernels by the instruction set the processor offers, in
three libraries: ATen's vectorised kernels (``ATEN_CPU_CAPABILITY``), oneDNN's
convolutions (``ONEDNN_MAX_CPU_ISA``) and MKL's GEMM and LAPACK, which also
back oneDNN's 1x1 convolutions and every linear layer (``MKL_CBWR``). An
AVX-512 kernel sums in another order than an AVX2 one, and one epoch of
training amplifies that last bit into points of accuracy. numpy dispatches
the same way (``NPY_DISABLE_CPU_FEATURES``).

Each library reads its variable once, when it first runs a kernel, so the
variables are set when ``nasforge`` is imported, before torch or numpy is,
and checked again when a job pins its threads (``environment.pin``).

Levels (``NASFORGE_CPU_ISA``):

- ``avx2`` (default): ATen and oneDNN capped at AVX2 + FMA, MKL in its
  processor-independent mode. MKL's ``MKL_CBWR=AVX2`` is *not* enough: on an
  Intel CPU it computes other bits than on an AMD one (seen under QEMU's
  Haswell model against an AMD EPYC host; ``COMPATIBLE`` agreed on both).
  AVX2 is the floor, not a choice: it is x86-64-v3 (every Intel CPU since
  Haswell, 2013, every AMD Zen), and polars' wheels need it to run at all.
- ``native``: nothing pinned; the bytes belong to this CPU alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from nasforge.errors import InputError, MachineError

ENV = "NASFORGE_CPU_ISA"
DEFAULT = "avx2"

LEVELS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_CBWR": "COMPATIBLE",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's dispatch groups above AVX2
    },
    "native": {},
}
# What torch.backends.cpu.get_cpu_capability() must answer once a level is in force.
ATEN_CAPABILITY = {"avx2": "AVX2"}
# /proc/cpuinfo flags a level needs.
REQUIRED_FLAGS = {"avx2": {"avx2", "fma"}, "native": set()}


def level() -> str:
    """The level in force for this process (from ``NASFORGE_CPU_ISA``)."""
    value = os.environ.get(ENV, DEFAULT).strip().lower() or DEFAULT
    if value not in LEVELS:
        raise InputError(f"{ENV}={value!r} is not a level nasforge knows; use one of {sorted(LEVELS)} "
                         f"(or unset it for {DEFAULT!r})")
    return value


def pin_environment() -> None:
    """Set the libraries' variables for the level in force. Overrides what the shell set:
    a cap left over from elsewhere would silently change every number."""
    os.environ.update(LEVELS[level()])


def _cpuinfo(field: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first CPU's value of one /proc/cpuinfo field, or None where the platform does not say."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags, or None where the platform does not say (not Linux)."""
    flags = _cpuinfo("flags")
    return None if flags is None else set(flags.split())


def check_cpu(flags: set[str] | None = None) -> None:
    """Refuse a level this CPU cannot honour: the libraries would fall back to other kernels
    silently, and the bytes would differ from every other machine's."""
    lvl = level()
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return
    missing = sorted(REQUIRED_FLAGS[lvl] - flags)
    if missing:
        raise MachineError(
            f"this CPU lacks {missing}, which {ENV}={lvl} needs to compute the same bytes as every other "
            f"machine; run on an x86-64-v3 CPU (Intel since 2013, any AMD Zen), or set {ENV}=native to "
            f"build bytes of this CPU alone")


def describe() -> dict[str, str]:
    """The numeric settings in force, for a table's metadata and the manifest: machine-independent."""
    settings = {"cpu_isa": level()}
    settings.update({k: os.environ.get(k, "") for k in sorted(LEVELS["avx2"])})
    return settings


def cpu_model() -> str:
    """The CPU's model name: for the measured tree only, never a deterministic file."""
    import platform

    return _cpuinfo("model name") or platform.processor() or "unknown"
