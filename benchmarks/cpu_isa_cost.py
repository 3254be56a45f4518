"""What pinning the CPU kernels' instruction set costs: training throughput pinned against unpinned.

Runs ``train_throughput.py`` (the reference engine, three TSS cells, the real
protocol) once per ``NASFORGE_CPU_ISA`` level in a fresh process (the level is
read before torch loads), then prints the slowdown per cell and writes JSON.

    python benchmarks/cpu_isa_cost.py                 # 2 threads, 2 epochs of 2,560 images
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results/cpu_isa_cost.json")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in ("native", "avx2"):
            out = Path(tmp) / f"{level}.json"
            cmd = [sys.executable, str(HERE / "train_throughput.py"), "--device", "cpu", "--threads",
                   str(args.threads), "--epochs", str(args.epochs), "--out", str(out)]
            if args.images:
                cmd += ["--images", str(args.images)]
            subprocess.run(cmd, check=True, env=dict(os.environ, NASFORGE_CPU_ISA=level))
            runs[level] = json.loads(out.read_text())
    rows = []
    for native, pinned in zip(runs["native"]["results"], runs["avx2"]["results"], strict=True):
        rows.append({"cell": native["cell"], "native_images_per_second": native["images_per_second"],
                     "avx2_images_per_second": pinned["images_per_second"],
                     "slowdown": round(native["images_per_second"] / pinned["images_per_second"], 3)})
    report = {"benchmark": "cpu_isa_cost", "host": runs["avx2"]["host"], "threads": args.threads,
              "images_per_epoch": runs["avx2"]["images_per_epoch"], "epochs": args.epochs,
              "numerics": {k: v for k, v in runs["avx2"]["environment"].items() if k.startswith("numerics.")},
              "results": rows}
    print(f"\n{report['host']['cpu']} ({report['host']['cpu_extensions']}), {args.threads} threads")
    print(f"{'cell':<6} {'native img/s':>13} {'avx2 img/s':>11} {'slowdown':>9}")
    for r in rows:
        print(f"{r['cell']:<6} {r['native_images_per_second']:>13.1f} {r['avx2_images_per_second']:>11.1f} "
              f"{r['slowdown']:>8.3f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
