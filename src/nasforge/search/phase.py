"""The search phase's two steps, from params.yaml to files under ``results/search/{space}/``.

``proxies`` needs only the prepared data and the plan (it trains nothing), so
the analysis can correlate proxies with accuracy; ``suite`` runs the
algorithms on the aggregated tables. Both write through ``write_table`` /
an atomic rename, so a failed step leaves the previous outputs whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
from rich.progress import Progress

from nasforge.api.benchmark import Benchmark
from nasforge.files import write_checked
from nasforge.tables import read_table, write_table


def search_folder(results: Path, space: str) -> Path:
    return Path(results) / "search" / space

def compute_proxies(params: dict, results: Path) -> Path:
    """``proxies.parquet``: every planned arch on every dataset, scored with the first training seed."""
    from nasforge.search.proxies import score_archs
    from nasforge.train import environment
    from nasforge.train.splits import load_splits

    space, train = params["space"], params["train"]
    environment.pin(train.get("threads", 1))
    device = environment.resolve_device(train.get("device", "auto"))
    plan = Path(results) / "plan" / f"{space}.parquet"
    if not plan.is_file():
        raise FileNotFoundError(f"{plan}: no plan; run the plan phase first (snakemake phase_plan)")
    archs = read_table(plan, "rerun the plan phase (snakemake phase_plan)")["arch_index"].to_list()
    batch_size = params["search"]["proxies"]["batch_size"]
    frames = []
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
        for dataset in params["datasets"]:
            task = progress.add_task(f"proxies {dataset}", total=len(archs))
            splits = load_splits(Path(results) / "data" / dataset, device)
            frames.append(score_archs(space, archs, train["seeds"][0], splits, batch_size, device,
                                      on_arch=lambda _: progress.advance(task)))
    out = search_folder(results, space) / "proxies.parquet"
    write_table(pl.concat(frames), out, ["dataset", "arch_index"])
    return out

def run_search_suite(params: dict, results: Path) -> list[Path]:
    """Trajectories, summary table and figure of every configured algorithm."""
    from nasforge.search.multi_trial import final_results
    from nasforge.search.suite import KEYS, run_suite, summary_markdown, trajectory_figure

    space, config = params["space"], params["search"]
    folder = search_folder(results, space)
    proxies_path = folder / "proxies.parquet"
    if not proxies_path.is_file():
        raise FileNotFoundError(f"{proxies_path}: no proxies table; run the proxies rule first (snakemake phase_search)")
    bench = Benchmark.from_tables(Path(results) / "bench" / space, space, Path(results) / "bench" / space,
                                  Path(results) / "measured" / "bench" / space / "arch_times.parquet")
    trajectories, skipped = run_suite(bench, read_table(proxies_path, "rerun the proxies rule"), config)
    summary = final_results(trajectories)
    paths = [
        write_table(trajectories, folder / "trajectories.parquet", KEYS),
        write_table(summary, folder / "summary.parquet", ["dataset", "hp", "algo"]),
    ]
    markdown = write_checked(folder / "summary.md", summary_markdown(summary, skipped, config).encode())
    paths += [markdown, trajectory_figure(trajectories, config["time_budget"], folder)]
    return paths
