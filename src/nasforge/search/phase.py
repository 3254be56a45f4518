"""The search phase's two steps, from params.yaml to files under ``results/search/{space}/``
(every path from ``nasforge.paths``).

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
from nasforge.errors import InputError, MissingInputError
from nasforge.files import write_checked
from nasforge.paths import Results, results_at
from nasforge.schema import PROXY_KEYS, TRAJECTORY_KEYS, TRAJECTORY_SCHEMA
from nasforge.tables import read_table, write_table

PLAN_HINT = "rerun the plan phase (snakemake phase_plan)"


def compute_proxies(params: dict, results: Results | Path, dataset: str | None = None, gather: bool = False) -> Path:
    """``proxies.parquet``: every planned arch on every dataset, scored with the first training seed.
    ``dataset``: score that dataset alone into ``proxies/{dataset}.parquet`` (one pipeline job, holding
    one dataset in memory); ``gather``: concatenate those jobs' tables into ``proxies.parquet``."""
    space, results = params["space"], results_at(results)
    out = Path(results.search_file(space, "proxies.parquet"))
    if gather:
        frames = [read_table(results.proxies_part(space, d), "rerun the proxies_dataset rule")
                  for d in params["datasets"]]
        return write_table(pl.concat(frames), out, PROXY_KEYS)
    if dataset is not None and dataset not in params["datasets"]:
        raise InputError(f"dataset {dataset!r} is not in the configuration's datasets {params['datasets']}")
    frames = [_score(params, results, d) for d in ([dataset] if dataset else params["datasets"])]
    return write_table(pl.concat(frames), results.proxies_part(space, dataset) if dataset else out, PROXY_KEYS)


def _score(params: dict, results: Results, dataset: str) -> pl.DataFrame:
    from nasforge.search.proxies import score_archs
    from nasforge.train import environment
    from nasforge.train.splits import load_splits

    space, train = params["space"], params["train"]
    environment.pin(train["threads"])
    device = environment.resolve_device(train["device"])
    plan = Path(results.plan(space))
    if not plan.is_file():
        raise MissingInputError(f"{plan}: no plan; run the plan phase first (snakemake phase_plan)")
    archs = read_table(plan, PLAN_HINT)["arch_index"].to_list()
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task(f"proxies {dataset}", total=len(archs))
        splits = load_splits(results.data(dataset), device)
        return score_archs(space, archs, train["seeds"][0], splits, params["search"]["proxies"]["batch_size"],
                           device, on_arch=lambda _: progress.advance(task))


def _bench(results: Results, space: str) -> Benchmark:
    return Benchmark.from_tables(results.aggregate(space), space, results.aggregate(space),
                                 results.measured_table(space, "arch_times"))


def _proxies(results: Results, space: str) -> pl.DataFrame:
    proxies_path = Path(results.search_file(space, "proxies.parquet"))
    if not proxies_path.is_file():
        raise MissingInputError(f"{proxies_path}: no proxies table; run the proxies rule first (snakemake phase_search)")
    return read_table(proxies_path, "rerun the proxies rule")


def run_search_algorithm(params: dict, results: Results | Path, algo: str, dataset: str) -> Path:
    """One job of the suite: ``algo`` on ``dataset`` (empty when the dataset cannot be searched), so
    Snakemake runs the algorithms and datasets side by side."""
    from nasforge.search.suite import run_suite

    space, config, results = params["space"], params["search"], results_at(results)
    if algo not in config["algorithms"]:
        raise InputError(f"algorithm {algo!r} is not in search.algorithms {config['algorithms']}")
    proxies = _proxies(results, space)
    trajectories, _ = run_suite(_bench(results, space), proxies, config, only=(algo, dataset))
    return write_table(trajectories, results.search_run(space, algo, dataset), TRAJECTORY_KEYS)


def run_search_suite(params: dict, results: Results | Path, datasets: list[str] | None = None) -> list[Path]:
    """Trajectories, summary table and figure of every configured algorithm: gathered from the suite's
    jobs (``run_search_algorithm``) when ``datasets`` names theirs, else run here in one process."""
    from nasforge.search.multi_trial import final_results
    from nasforge.search.suite import run_suite, searchable, summary_markdown, trajectory_figure

    space, config, results = params["space"], params["search"], results_at(results)
    folder = Path(results.search(space))
    proxies = _proxies(results, space) if datasets is None else None
    bench = _bench(results, space)
    if datasets is None:
        trajectories, skipped = run_suite(bench, proxies, config)
    else:
        frames = [read_table(results.search_run(space, algo, d), "rerun the search_algorithm rule")
                  for algo in config["algorithms"] for d in datasets]
        trajectories = (pl.concat(frames).sort(TRAJECTORY_KEYS) if frames
                        else pl.DataFrame(schema=TRAJECTORY_SCHEMA))
        skipped = searchable(bench)[1]
    summary = final_results(trajectories)
    paths = [
        write_table(trajectories, folder / "trajectories.parquet", TRAJECTORY_KEYS),
        write_table(summary, folder / "summary.parquet", ["dataset", "hp", "algo"]),
    ]
    markdown = write_checked(folder / "summary.md", summary_markdown(summary, skipped, config).encode())
    paths += [markdown, trajectory_figure(trajectories, config["time_budget"], folder)]
    return paths
