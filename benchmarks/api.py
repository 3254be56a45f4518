"""Open time and query latency of the query API on a synthetic full-size release.

Generates a release shaped like a full NATS-Bench TSS rebuild (15,625 archs x
4 datasets x 3 seeds, budgets 12 and 200 epochs: 39 million epoch rows) with
random numbers, then times ``Benchmark.open``/``create`` and the queries NAS
code makes. Prints a table and writes JSON. Targets (issue 6): open < 1 s,
query < 20 us, 1,000 REA runs < 60 s on 2 cores.

    python benchmarks/api.py [--archs 15625] [--out benchmarks/results/api.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
import polars as pl

from nasforge.api import Benchmark, create
from nasforge.schema import METRICS
from nasforge.spaces import get_space

DATASETS = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
BUDGETS = {"12": 12, "200": 200}
SEEDS = [777, 888, 999]


def synthetic_release(root: Path, n_archs: int) -> Path:
    rng = np.random.default_rng(0)
    space = get_space("tss")
    archs = np.arange(n_archs)
    names = [space.arch(int(i)) for i in archs]
    canonical = [space.canonical_index(int(i)) for i in archs]
    tables, measured = root / "tables", root / "measured"
    tables.mkdir(parents=True)
    measured.mkdir()
    arch_rows, time_rows, epoch_frames = [], [], []
    for dataset in DATASETS:
        for hp, epochs in BUDGETS.items():
            final = rng.uniform(10, 95, (n_archs, len(SEEDS)))
            block = {"space": ["tss"] * n_archs, "dataset": [dataset] * n_archs, "hp": [hp] * n_archs,
                     "arch_index": archs, "arch": names, "canonical_index": canonical,
                     "canonical": [names[0]] * n_archs, "params": rng.uniform(0.07, 1.5, n_archs),
                     "flops": rng.uniform(7, 220, n_archs), "n_seeds": [3] * n_archs,
                     "seeds": [SEEDS] * n_archs, "diverged": [False] * n_archs}
            for m in METRICS:
                values = final if m.endswith("acc") else 3 - final / 40
                block[f"{m}_seeds"] = values.tolist()
                block[f"{m}_mean"] = values.mean(1)
                block[f"{m}_std"] = values.std(1, ddof=1)
            arch_rows.append(pl.DataFrame(block))
            time_rows.append(pl.DataFrame({
                "dataset": [dataset] * n_archs, "hp": [hp] * n_archs, "arch_index": archs,
                "train_seconds_total": rng.uniform(50, 500, n_archs) * epochs / 12,
                "eval_seconds_total": rng.uniform(5, 50, n_archs) * epochs / 12,
                "train_seconds_per_epoch": rng.uniform(4, 40, n_archs), "eval_seconds_per_epoch": rng.uniform(0.4, 4, n_archs),
                "latency_bs1_ms": rng.uniform(2, 20, n_archs), "latency_bs256_ms": rng.uniform(20, 200, n_archs)}))
            n = n_archs * len(SEEDS) * epochs
            epoch_frames.append(pl.DataFrame({
                "space": pl.repeat("tss", n, eager=True), "arch_index": np.repeat(archs, len(SEEDS) * epochs),
                "dataset": pl.repeat(dataset, n, eager=True), "hp": pl.repeat(hp, n, eager=True),
                "seed": np.tile(np.repeat(SEEDS, epochs), n_archs), "epoch": np.tile(np.arange(epochs), n_archs * len(SEEDS)),
                "lr": np.tile(0.05 * (1 + np.cos(np.pi * np.arange(epochs) / epochs)), n_archs * len(SEEDS)),
                **{m: rng.uniform(0, 100, n).astype(np.float64) for m in METRICS}, "diverged": np.zeros(n, bool)}))
    pl.concat(arch_rows).sort("dataset", "hp", "arch_index").write_parquet(tables / "archs.parquet")
    pl.concat(time_rows).write_parquet(measured / "arch_times.parquet")
    pl.concat(epoch_frames).sort("dataset", "hp", "arch_index", "seed", "epoch").write_parquet(
        tables / "epochs.parquet", row_group_size=1 << 20)
    (root / "manifest.json").write_text(json.dumps({"space": "tss", "name": "synthetic"}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=15_625)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/api.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = synthetic_release(Path(tmp) / "release", args.archs)
        build = time.perf_counter() - start
        epoch_rows = pl.scan_parquet(root / "tables/epochs.parquet").select(pl.len()).collect().item()
        opens = []
        for _ in range(3):
            start = time.perf_counter()
            Benchmark.open(root)
            opens.append(time.perf_counter() - start)
        start = time.perf_counter()
        api = create(root, "tss")
        facade_open = time.perf_counter() - start
        bench = api._bench
        rng = random.Random(0)
        picks = [rng.randrange(args.archs) for _ in range(1000)]
        queries = {
            "Benchmark.final (seed mean)": lambda: [bench.final(i, "cifar100", "200") for i in picks],
            "Benchmark.final (one seed)": lambda: [bench.final(i, "cifar100", "200", seed=888) for i in picks],
            "Benchmark.cost": lambda: [bench.cost(i, "cifar100", "200") for i in picks],
            "facade.get_more_info": lambda: [api.get_more_info(i, "cifar100", hp="200", is_random=False) for i in picks],
            "facade.simulate_train_eval": lambda: [api.simulate_train_eval(i, "cifar100", hp="200") for i in picks],
        }
        latency = {name: min(timeit.repeat(fn, number=1, repeat=5)) / len(picks) * 1e6 for name, fn in queries.items()}
        start = time.perf_counter()
        bench.epochs(picks[0], "cifar100", "200", seed=777)
        per_epoch = time.perf_counter() - start
        start = time.perf_counter()
        best = bench.best("cifar100", "200", max_flops=100)
        best_seconds = time.perf_counter() - start
        from nasforge.search import final_results, run_search

        run_search(bench, "rea", "cifar10-valid", "12", 20_000, runs=1)  # encodes the space once
        start = time.perf_counter()
        rea = run_search(bench, "rea", "cifar10-valid", "12", 20_000, runs=1000)
        rea_seconds = time.perf_counter() - start
        rea_summary = final_results(rea).row(0, named=True)
    report = {"benchmark": "api", "archs": args.archs, "epoch_rows": epoch_rows, "build_seconds": round(build, 2),
              "open_seconds": round(min(opens), 4), "facade_open_seconds": round(facade_open, 4),
              "query_microseconds": {k: round(v, 2) for k, v in latency.items()},
              "per_epoch_query_seconds": round(per_epoch, 4), "best_seconds": round(best_seconds, 4),
              "rea_1000_runs_seconds": round(rea_seconds, 2), "rea_evaluations": rea.height,
              "rea_test_acc_mean": round(rea_summary["test_acc_mean"], 3),
              "machine": platform.machine(), "python": platform.python_version(), "best": best}
    print(f"synthetic release: {args.archs} archs, {epoch_rows:,} epoch rows (built in {build:.1f} s)")
    print(f"Benchmark.open {min(opens):.3f} s, create() {facade_open:.3f} s  (target < 1 s)")
    for name, us in latency.items():
        print(f"  {name:<30} {us:8.2f} us/query  (target < 20 us)")
    print(f"1000 REA runs (cifar10-valid hp12, 20000 simulated s each): {rea_seconds:.1f} s, "
          f"{rea.height} evaluations  (target < 60 s)")
    print(f"  per-epoch query (lazy scan)    {per_epoch * 1000:8.1f} ms; best under a FLOPs limit {best_seconds * 1000:.1f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
