"""What one NAS run costs on a full-size benchmark, and whether it grows with the release.

Builds synthetic tables with the shape of a full NATS-Bench TSS rebuild (all
15,625 archs, one dataset, budgets 12 and 200, three seeds, every epoch; the
numbers are made up, the sizes are real) and a 10% sample of them, then times
runs of random search, REA and BOHB (NATS-Bench's protocol: measured seconds,
here made up at 5-30 s an epoch, and its cifar10-valid budget of 20,000 s) on each. The per-run cost should not depend
on the release's size beyond the first run of a (dataset, budget), which
builds the search structures once.

    python benchmarks/search_full_size.py            # writes benchmarks/results/search_full_size.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from nasforge.api import Benchmark
from nasforge.schema import METRICS
from nasforge.search import TimeModel, run_search
from nasforge.spaces import get_space
from nasforge.tables import write_table

HERE = Path(__file__).resolve().parent
DATASET, SEEDS, BUDGETS = "cifar10-valid", [777, 888, 999], {"12": 12, "200": 200}


def synthetic_tables(folder: Path, archs: list[int]) -> Path:
    """archs.parquet, epochs.parquet and arch_times.parquet of the given archs, in the release schema."""
    from nasforge.aggregate import arch_table

    rng = np.random.default_rng(0)
    tss = get_space("tss")
    names = {i: tss.arch(i) for i in archs}
    quality = rng.uniform(10, 94, size=len(archs))
    frames = []
    for hp, epochs in BUDGETS.items():
        n = len(archs) * len(SEEDS) * epochs
        arch = np.repeat(np.array(archs), len(SEEDS) * epochs)
        seed = np.tile(np.repeat(np.array(SEEDS), epochs), len(archs))
        epoch = np.tile(np.arange(epochs), len(archs) * len(SEEDS))
        q = np.repeat(quality, len(SEEDS) * epochs)
        acc = np.clip(q * (1 - np.exp(-(epoch + 1) / (epochs / 4))) + rng.normal(0, 1, n), 0, 100)
        frame = pl.DataFrame({
            "space": "tss", "arch_index": arch, "arch": pl.Series(arch).replace_strict(names, return_dtype=pl.String),
            "dataset": DATASET, "hp": hp, "seed": seed, "epoch": epoch, "lr": 0.1,
            **{m: acc if m.endswith("acc") else (100 - acc) / 50 for m in METRICS[:6]},
            "valtest_loss": None, "valtest_acc": None, "diverged": False,
        }, schema_overrides={"valtest_loss": pl.Float64, "valtest_acc": pl.Float64})
        frames.append(frame)
    epochs_table = pl.concat(frames)
    write_table(epochs_table, folder / "epochs.parquet", ["dataset", "hp", "arch_index", "seed", "epoch"])
    write_table(arch_table(epochs_table, "tss"), folder / "archs.parquet", ["dataset", "hp", "arch_index"])
    per_epoch = dict(zip(archs, rng.uniform(5, 30, size=len(archs)).tolist(), strict=True))  # GPU-like seconds
    times = pl.DataFrame([{"dataset": DATASET, "hp": hp, "arch_index": a, "train_seconds_total": per_epoch[a] * e,
                           "eval_seconds_total": 0.1 * per_epoch[a] * e, "train_seconds_per_epoch": per_epoch[a],
                           "eval_seconds_per_epoch": 0.1 * per_epoch[a], "latency_bs1_ms": 1.0, "latency_bs256_ms": 9.0}
                          for hp, e in BUDGETS.items() for a in archs])
    write_table(times, folder / "arch_times.parquet", ["dataset", "hp", "arch_index"])
    return folder


def time_runs(bench: Benchmark, algo: str, hp: str, runs: int) -> dict:
    """Seconds of the first run (which may build per-(dataset, hp) structures) and per run after it."""
    model = TimeModel("measured")
    start = time.perf_counter()
    first = run_search(bench, algo, DATASET, hp, 20_000.0, 1, first_seed=0, time_model=model)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    rest = run_search(bench, algo, DATASET, hp, 20_000.0, runs, first_seed=1, time_model=model)
    per_run = (time.perf_counter() - start) / runs
    return {"first_run_s": round(first_s, 4), "per_run_s": round(per_run, 5), "runs": runs,
            "evaluations_per_run": round((rest.height) / runs, 1), "first_run_evaluations": first.height}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs of random search and REA")
    parser.add_argument("--bohb-runs", type=int, default=5)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path, default=HERE / "results/search_full_size.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, archs in (("10%", list(range(0, 15625, 10))), ("full", list(range(15625)))):
            start = time.perf_counter()
            folder = synthetic_tables(Path(tmp) / name, archs)
            built = time.perf_counter() - start
            start = time.perf_counter()
            bench = Benchmark.from_tables(folder, "tss", folder, folder / "arch_times.parquet")
            opened = time.perf_counter() - start
            entry = {"archs": len(archs), "epoch_rows": pl.scan_parquet(folder / "epochs.parquet").select(pl.len())
                     .collect().item(), "build_s": round(built, 1), "open_s": round(opened, 3)}
            for algo, runs in (("random", args.runs), ("rea", args.runs), ("bohb", args.bohb_runs)):
                for hp in BUDGETS:
                    entry[f"{algo}/hp{hp}"] = time_runs(bench, algo, hp, runs)
                    print(name, algo, f"hp{hp}", entry[f"{algo}/hp{hp}"], flush=True)
            results[name] = entry
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    previous[args.label] = results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out} ({args.label})")


if __name__ == "__main__":
    main()
