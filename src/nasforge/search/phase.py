"""The search phase's two steps, from params.yaml to files under ``results/search/{space}/``.

``proxies`` needs only the prepared data and the plan (it trains nothing), so
the analysis can correlate proxies with accuracy; ``suite`` runs the
algorithms on the aggregated tables. Each is split into jobs Snakemake runs
side by side (proxies per dataset into ``proxies/``, the suite per algorithm and
dataset into ``runs/``) and a gathering step; run without those options, each
does everything in one process. Everything is written through ``write_table``
/ ``write_checked``, so a failed step leaves the previous outputs whole.
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

def proxies_table(results: Path, space: str, dataset: str) -> Path:
    """One proxies job's table: every planned arch scored on one dataset."""
    return search_folder(results, space) / "proxies" / f"{dataset}.parquet"


def compute_proxies(params: dict, results: Path, dataset: str | None = None, gather: bool = False) -> Path:
    """``proxies.parquet``: every planned arch on every dataset, scored with the first training seed.
    ``dataset``: score that dataset alone into ``proxies/{dataset}.parquet`` (one pipeline job, holding
    one dataset in memory); ``gather``: concatenate those jobs' tables into ``proxies.parquet``."""
    space = params["space"]
    out = search_folder(results, space) / "proxies.parquet"
    if gather:
        frames = [read_table(proxies_table(results, space, d), "rerun the proxies_dataset rule")
                  for d in params["datasets"]]
        return write_table(pl.concat(frames), out, ["dataset", "arch_index"])
    if dataset is not None and dataset not in params["datasets"]:
        raise ValueError(f"dataset {dataset!r} is not in the configuration's datasets {params['datasets']}")
    frames = [_score(params, results, d) for d in ([dataset] if dataset else params["datasets"])]
    return write_table(pl.concat(frames), proxies_table(results, space, dataset) if dataset else out,
                       ["dataset", "arch_index"])


def _score(params: dict, results: Path, dataset: str) -> pl.DataFrame:
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
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task(f"proxies {dataset}", total=len(archs))
        splits = load_splits(Path(results) / "data" / dataset, device)
        return score_archs(space, archs, train["seeds"][0], splits, params["search"]["proxies"]["batch_size"],
                           device, on_arch=lambda _: progress.advance(task))


def runs_table(results: Path, space: str, algo: str, dataset: str) -> Path:
    """One suite job's trajectories: one algorithm on one dataset (every budget)."""
    return search_folder(results, space) / "runs" / algo / f"{dataset}.parquet"


def _bench(results: Path, space: str) -> Benchmark:
    return Benchmark.from_tables(Path(results) / "bench" / space, space, Path(results) / "bench" / space,
                                 Path(results) / "measured" / "bench" / space / "arch_times.parquet")


def _proxies(results: Path, space: str) -> pl.DataFrame:
    proxies_path = search_folder(results, space) / "proxies.parquet"
    if not proxies_path.is_file():
        raise FileNotFoundError(f"{proxies_path}: no proxies table; run the proxies rule first (snakemake phase_search)")
    return read_table(proxies_path, "rerun the proxies rule")


def run_search_algorithm(params: dict, results: Path, algo: str, dataset: str) -> Path:
    """One job of the suite: ``algo`` on ``dataset`` (empty when the dataset cannot be searched), so
    Snakemake runs the algorithms and datasets side by side."""
    from nasforge.search.suite import KEYS, run_suite

    space, config = params["space"], params["search"]
    if algo not in config["algorithms"]:
        raise ValueError(f"algorithm {algo!r} is not in search.algorithms {config['algorithms']}")
    proxies = _proxies(results, space)
    trajectories, _ = run_suite(_bench(results, space), proxies, config, only=(algo, dataset))
    return write_table(trajectories, runs_table(results, space, algo, dataset), KEYS)


def run_search_suite(params: dict, results: Path, datasets: list[str] | None = None) -> list[Path]:
    """Trajectories, summary table and figure of every configured algorithm: gathered from the suite's
    jobs (``run_search_algorithm``) when ``datasets`` names theirs, else run here in one process."""
    from nasforge.search.multi_trial import TRAJECTORY_SCHEMA, final_results
    from nasforge.search.suite import KEYS, run_suite, searchable, summary_markdown, trajectory_figure

    space, config = params["space"], params["search"]
    folder = search_folder(results, space)
    proxies = _proxies(results, space) if datasets is None else None
    bench = _bench(results, space)
    if datasets is None:
        trajectories, skipped = run_suite(bench, proxies, config)
    else:
        frames = [read_table(runs_table(results, space, algo, d), "rerun the search_algorithm rule")
                  for algo in config["algorithms"] for d in datasets]
        trajectories = pl.concat(frames).sort(KEYS) if frames else pl.DataFrame(schema=TRAJECTORY_SCHEMA)
        skipped = searchable(bench)[1]
    summary = final_results(trajectories)
    paths = [
        write_table(trajectories, folder / "trajectories.parquet", KEYS),
        write_table(summary, folder / "summary.parquet", ["dataset", "hp", "algo"]),
    ]
    markdown = write_checked(folder / "summary.md", summary_markdown(summary, skipped, config).encode())
    paths += [markdown, trajectory_figure(trajectories, config["time_budget"], folder)]
    return paths
