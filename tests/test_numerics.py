"""Same bytes on every x86-64 CPU: the kernels' instruction set is pinned, whatever the CPU or shell offers.

Three proofs, from cheap to strong:
- the level's variables are set before torch loads and override what the shell set;
- a shard trained under other caps in the shell (oneDNN at SSE4.1, ATen's scalar
  kernels, MKL limited to SSE4.2) gives the same bytes, while unpinned training
  under those caps gives other numbers (so the caps do bite);
- under QEMU's model of an Intel Haswell (another vendor, other caches, AVX2),
  a training step gives the host's bytes when pinned and other bytes unpinned;
  on a model without AVX2 (Nehalem) nothing computes other bytes silently: the
  job stops (polars' wheels themselves need AVX2; nasforge's check names the fix).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from nasforge import numerics

ROOT = Path(__file__).resolve().parents[1]
NASFORGE = str(Path(sys.executable).parent / "nasforge")
# What a shell on another machine might carry: caps that, unpinned, change the kernels.
CAPS = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "MKL_CBWR": "AVX", "NPY_DISABLE_CPU_FEATURES": ""}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CAPS and k != numerics.ENV}
    return {**env, **extra}


def test_levels_set_every_library_and_override_the_shell(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    monkeypatch.delenv(numerics.ENV, raising=False)
    numerics.pin_environment()
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2" and os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"
    assert numerics.describe()["cpu_isa"] == "avx2"
    monkeypatch.setenv(numerics.ENV, "avx512")
    with pytest.raises(ValueError, match="NASFORGE_CPU_ISA='avx512' is not a level.*'avx2', 'native'"):
        numerics.level()


def test_a_cpu_without_the_level_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv(numerics.ENV, "avx2")
    with pytest.raises(RuntimeError, match=r"lacks \['avx2', 'fma'\].*x86-64-v3.*NASFORGE_CPU_ISA=native"):
        numerics.check_cpu({"sse4_1", "sse4_2", "avx"})
    numerics.check_cpu({"sse4_1", "avx", "avx2", "fma", "avx512f"})
    monkeypatch.setenv(numerics.ENV, "native")
    numerics.check_cpu({"sse4_1"})


def test_the_torch_in_this_process_runs_at_the_pinned_capability():
    import torch

    assert torch.backends.cpu.get_cpu_capability() == numerics.ATEN_CAPABILITY[numerics.level()]


def train(data: Path, out: Path, env: dict[str, str]) -> Path:
    cmd = [NASFORGE, "train-shard", "--space", "tss", "--dataset", "mnist5k", "--hp", "01", "--seed", "777",
           "--archs", "0,123", "--data", str(data / "mnist5k"), "--results", str(out), "--device", "cpu",
           "--threads", "1", "--latency-repeats", "1",
           "--protocol-json", '{"batch_size": 32}']
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return out / "train/tss/mnist5k/hp01/seed777/shard0.parquet"


@pytest.mark.slow
def test_caps_in_the_shell_change_no_byte_of_a_pinned_shard(mnist_tiny, tmp_path):
    plain = train(mnist_tiny, tmp_path / "plain", clean_env())
    capped = train(mnist_tiny, tmp_path / "capped", clean_env(**CAPS))
    assert plain.read_bytes() == capped.read_bytes()
    # The same caps unpinned: other kernels, other numbers (the caps are real, the pin is what holds).
    metrics = ["train_loss", "valid_loss", "test_loss"]
    native = train(mnist_tiny, tmp_path / "native", clean_env(**{numerics.ENV: "native"}))
    native_capped = train(mnist_tiny, tmp_path / "native-capped", clean_env(**CAPS, **{numerics.ENV: "native"}))
    assert not pl.read_parquet(native).select(metrics).equals(pl.read_parquet(native_capped).select(metrics))


def probe(cpu: str | None, level: str) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "tests/helpers/cpu_probe.py")]
    if cpu:
        cmd = ["qemu-x86_64", "-cpu", cpu, *cmd]
    return subprocess.Popen(cmd, env=clean_env(**{numerics.ENV: level}), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="needs qemu-x86_64 (Debian: qemu-user)")
@pytest.mark.skipif(numerics.cpu_flags() is None or "avx2" not in numerics.cpu_flags(), reason="host lacks AVX2")
def test_an_intel_cpu_model_computes_the_hosts_bytes_when_pinned():
    """QEMU computes exactly (its model of the host's own kind gives the host's bytes) but reports
    another CPU to the libraries: vendor, caches and instruction sets. Minutes: QEMU emulates."""
    runs = {
        "host": probe(None, "avx2"), "intel": probe("Haswell-v4", "avx2"),
        "host_native": probe(None, "native"), "intel_native": probe("Haswell-v4", "native"),
        "no_avx2": probe("Nehalem-v2", "avx2"),
    }
    out = {name: (p.communicate(timeout=900), p.returncode) for name, p in runs.items()}
    digest = {name: stdout.strip() for name, ((stdout, _), code) in out.items() if code == 0}
    assert {"host", "intel", "host_native", "intel_native"} <= set(digest), out
    assert digest["intel"] == digest["host"]
    if "avx512f" in (numerics.cpu_flags() or ()):
        # Unpinned, a host with AVX-512 runs kernels the Haswell model lacks: other bits. (On a host whose own
        # best kernels are AVX2 the two may coincide, so nothing is asserted there: the pin is the promise.)
        assert digest["intel_native"] != digest["host_native"]
    (stdout, stderr), code = out["no_avx2"]
    assert code != 0 and not stdout.strip(), stderr[-2000:]  # no digest: it computed nothing
