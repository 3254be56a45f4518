"""Import, audit and query a synthetic NATS-Bench TSS source of full size; print and write the numbers.

The source is NATS-Bench's "simple" layout at its published size: 15,625 arch
files, each with hp 12 (seed 111 on every dataset, plus 777 on cifar10-valid)
and hp 200 (seeds 777/888/999; every 50th arch lacks 999), on cifar10-valid,
cifar10, cifar100 and ImageNet16-120, every epoch recorded with its eval sets
and times: 38.4 million per-epoch rows. Values are synthetic (a seeded random
walk), the structure and the sizes are NATS-Bench's. Generating it takes a
while (bz2 at level 1, both cores); it is kept in ``--source`` for reruns.

    python benchmarks/import_full_size.py --source /tmp/nats-full --out /tmp/nats-full-release

Writes ``benchmarks/results/import_full_size.json``: the import's wall time
and peak memory (import + audit + figures, one process), then the wall time
and peak memory of each post-import phase run on the release (open, facade
queries, a search suite, verify).
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import pickle
import platform
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
        "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def _run(index: int, arch: str, dataset: str, hp: str, seed: int) -> dict:
    rng = random.Random(index * 1_000_003 + seed * 7 + len(dataset) * 13 + int(hp))
    epochs = int(hp)
    top = 100 / CLASSES[dataset] + rng.uniform(0.3, 1.0) * (90 - 100 / CLASSES[dataset])
    per_epoch = 5.0 + (index % 97) / 10
    acc, loss, times, e_acc, e_loss, e_times = {}, {}, {}, {}, {}, {}
    for e in range(epochs):
        p = (e + 1) / epochs
        acc[e], loss[e], times[e] = top * p + rng.random(), 2.3 * (1 - p) + rng.random() / 10, per_epoch
        for name in SETS[dataset]:
            key = f"{name}@{e}"
            e_acc[key], e_loss[key], e_times[key] = top * p - rng.random() * 3, 2.4 * (1 - p) + rng.random() / 5, per_epoch / 4
    return {"name": dataset, "net_state_dict": None, "train_acc1es": acc, "train_acc5es": None, "train_losses": loss,
            "train_times": times, "arch_config": {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch,
                                                  "class_num": CLASSES[dataset]},
            "params": 0.1 + index / 1e5, "flop": 10 + index / 100, "seed": seed, "epochs": epochs,
            "latency": [0.01 + index / 1e7], "eval_names": list(SETS[dataset]), "eval_acc1es": e_acc,
            "eval_times": e_times, "eval_losses": e_loss}


def _arch_file(args: tuple[int, str, str]) -> None:
    index, arch, folder = args
    path = Path(folder) / f"{index:06d}.pickle.pbz2"
    if path.exists():
        return
    states = {}
    for hp, seeds in (("12", {d: [111, 777] if d == "cifar10-valid" else [111] for d in SETS}),
                      ("200", {d: [777, 888] if index % 50 == 0 else [777, 888, 999] for d in SETS})):
        all_results = {(d, s): _run(index, arch, d, hp, s) for d, ss in seeds.items() for s in ss}
        states[hp] = {"arch_index": index, "arch_str": arch, "all_results": all_results, "dataset_seed": seeds,
                      "clear_net_done": False}
    tmp = path.with_suffix(".tmp")
    with bz2.BZ2File(tmp, "wb", compresslevel=1) as f:
        pickle.dump(states, f, protocol=4)
    tmp.replace(path)


def generate(folder: Path) -> float:
    from nasforge.spaces import get_space

    archs = list(get_space("tss"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    meta = folder / "meta.pickle.pbz2"
    if not meta.exists():
        with bz2.BZ2File(meta, "wb") as f:
            pickle.dump({"meta_archs": archs, "arch2infos": {}, "evaluated_indexes": set()}, f, protocol=4)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_arch_file, [(i, a, str(folder)) for i, a in enumerate(archs)], chunksize=64))
    return time.perf_counter() - start


PHASES = {
    "import": "from nasforge.imports import import_release; import_release({source!r}, 'tss', {out!r})",
    "open": "from nasforge.api import Benchmark; Benchmark.open({out!r})",
    "facade_queries": ("import random; from nasforge.api import create; api = create({out!r}, 'tss'); random.seed(0)\n"
                       "for i in random.sample(range(15625), 100): api.get_more_info(i, 'cifar100', hp='200', is_random=False);"
                       " api.get_cost_info(i, 'cifar100', hp='200')\n"
                       "api.find_best('cifar100', 'x-test', hp='200'); api.statistics('cifar100', '200')"),
    "search_suite": ("from nasforge.api import Benchmark; from nasforge.search.multi_trial import run_search\n"
                     "b = Benchmark.open({out!r})\n"
                     "for algo in ('random', 'rea', 'reinforce', 'bohb'): run_search(b, algo, 'cifar100', '200', runs=10, "
                     "time_budget=40000)"),
    "verify": "from nasforge.release import verify; assert verify({out!r}) == []",
}


def measure(code: str) -> dict:
    """Wall seconds and peak resident memory of ``code`` in a fresh interpreter."""
    wrapper = (f"import resource, time, json; t = time.perf_counter()\n{code}\n"
               "print(json.dumps({'seconds': time.perf_counter() - t, "
               "'peak_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))")
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=False)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=Path("/tmp/nats-full/NATS-tss-v1_0-3ffb9-simple"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/nats-full-release"))
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "import_full_size.json")
    parser.add_argument("--generate-only", action="store_true", help="Write the source and stop.")
    args = parser.parse_args()
    generated = generate(args.source)
    if args.generate_only:
        return
    source_bytes = sum(p.stat().st_size for p in args.source.iterdir())
    print(f"source: {args.source} ({source_bytes / 2**30:.2f} GiB; generated in {generated:.0f} s)", flush=True)
    results = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "python": platform.python_version()},
               "source": {"archs": 15625, "bytes": source_bytes}, "phases": {}}
    for name, code in PHASES.items():
        results["phases"][name] = measure(code.format(source=str(args.source), out=str(args.out)))
        print(f"{name}: {results['phases'][name]}", flush=True)
    if (args.out / "tables" / "epochs.parquet").is_file():
        import polars as pl

        results["rows"] = {t: pl.scan_parquet(args.out / "tables" / f"{t}.parquet").select(pl.len()).collect().item()
                           for t in ("epochs", "archs", "run_times", "run_costs")}
        results["release_bytes"] = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
        results["findings"] = json.loads((args.out / "manifest.json").read_text())["audit"]
    args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
