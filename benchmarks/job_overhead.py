"""What a train job spends before it trains anything: starting Python, importing, pinning torch.

A full NATS-Bench TSS rebuild runs 6,144 train jobs (params-nats.yaml), so
every second of start-up is 1.7 CPU-hours. Each variant starts a fresh
process ``--repeats`` times and times the same work a ``nasforge
train-shard`` job does before its first arch: import the CLI and the trainer,
then pin torch (threads, deterministic kernels). ``public`` enables
deterministic kernels with ``torch.use_deterministic_algorithms``, which
imports torch._inductor to set a flag only torch.compile reads; ``nasforge``
is what ``environment.pin`` does now. It also times one latency measurement
(batch 1 and 256, three repeats: what each arch of a job adds after training).

    python benchmarks/job_overhead.py        # writes benchmarks/results/job_overhead.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = "import nasforge.cli; from nasforge.train.shard import run_shard; from nasforge.train import environment; "
VARIANTS = {
    "import only": START,
    "public": START + "import torch; torch.set_num_threads(1); torch.use_deterministic_algorithms(True)",
    "nasforge": START + "environment.pin(1)",
}
LATENCY = """
import time, nasforge, torch
from nasforge.train import environment
from nasforge.train.reference import measure_latency
from nasforge.models.networks import build_network
environment.pin(1)
net = build_network("tss", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", 10, 1)
start = time.perf_counter()
for batch in (1, 256):
    measure_latency(net, batch, (1, 32, 32), torch.device("cpu"), 3)
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results/job_overhead.json")
    args = parser.parse_args()
    results = {}
    for name, code in VARIANTS.items():
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            seconds.append(time.perf_counter() - start)
        results[name] = {"median_s": round(statistics.median(seconds), 3), "all_s": [round(s, 3) for s in seconds]}
        print(f"{name:12s} median {results[name]['median_s']:.2f} s over {args.repeats} fresh processes", flush=True)
    latency = [float(subprocess.run([sys.executable, "-c", LATENCY], check=True, capture_output=True, text=True)
                     .stdout.split()[-1]) for _ in range(3)]
    results["latency_per_arch_s"] = round(statistics.median(latency), 3)
    saved = results["public"]["median_s"] - results["nasforge"]["median_s"]
    results["saved_per_job_s"] = round(saved, 3)
    results["saved_nats_rebuild_cpu_h"] = round(saved * 6144 / 3600, 2)
    print(f"latency of one arch (bs 1 + 256, 3 repeats): {results['latency_per_arch_s']:.2f} s; "
          f"saved per job {saved:.2f} s = {results['saved_nats_rebuild_cpu_h']:.2f} CPU-h over 6,144 jobs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
