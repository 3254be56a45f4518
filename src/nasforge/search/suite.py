"""The search phase: every configured NAS algorithm run on the benchmark, scored NATS-Bench's way.

``results/search/{space}/``::

    proxies.parquet       training-free proxies per (dataset, arch), at initialisation
    trajectories.parquet  one row per evaluation of every run of every algorithm
    summary.parquet       mean and std over runs of the chosen arch's test accuracy
    summary.md            the same as NATS-Bench's tables print it (mean +- std)
    search_trajectories.png  best-so-far test accuracy against simulated time

Multi-trial algorithms charge simulated time (``TimeModel``). ``naswot`` is
the training-free search of Mellor et al.: sample N archs, keep the one with
the best NASWOT score; it trains nothing, so it charges no time, and its rows
carry the score instead of a validation accuracy.

With the ``flops`` time model every file here is a function of the
deterministic tables and the seeds, so it is byte-identical on a rebuild.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from nasforge.analysis import STYLE, save_figure
from nasforge.api.benchmark import Benchmark
from nasforge.errors import InputError
from nasforge.schema import TRAJECTORY_KEYS, TRAJECTORY_SCHEMA
from nasforge.search.multi_trial import run_search
from nasforge.search.simulation import TimeModel

NASWOT = "naswot"


def searchable(bench: Benchmark) -> tuple[list[tuple[str, str]], list[str]]:
    """The (dataset, hp) pairs a search can run on, and the datasets it must skip (no validation
    split: selecting on the test set would be no benchmark of a search)."""
    settings, skipped = [], []
    for dataset in bench.datasets:
        final = bench.final(bench.indices[0], dataset, bench.budgets[0])
        if final["valid_acc"] is None:
            skipped.append(dataset)
            continue
        settings += [(dataset, hp) for hp in bench.budgets]
    return settings, skipped


def naswot_search(bench: Benchmark, proxies: pl.DataFrame, dataset: str, hp: str, samples: int, runs: int,
                  first_seed: int = 0) -> pl.DataFrame:
    """Mellor et al.'s search without training: per run, ``samples`` distinct archs drawn at
    random, the best NASWOT score kept (lowest index on ties)."""
    scores = dict(proxies.filter(pl.col("dataset") == dataset).select("arch_index", NASWOT).iter_rows())
    missing = sorted(set(bench.indices) - set(scores))
    if missing:
        raise InputError(f"proxies table has no {NASWOT} score for {len(missing)} archs of {dataset} "
                         f"(e.g. {missing[:3]}); rebuild it with the search phase's proxies rule")
    rows = []
    for run in range(first_seed, first_seed + runs):
        rng = random.Random(run)
        picked = rng.sample(bench.indices, min(samples, len(bench.indices)))
        best: tuple[float, int] | None = None
        for step, index in enumerate(picked):
            if best is None or (scores[index], -index) > (best[0], -best[1]):
                best = (scores[index], index)
            rows.append({"algo": NASWOT, "dataset": dataset, "hp": hp, "run": run, "step": step,
                         "simulated_seconds": 0.0, "arch_index": index, "score": scores[index],
                         "best_arch_index": best[1], "best_test_acc": bench.final(best[1], dataset, hp)["test_acc"]})
    return pl.DataFrame(rows, schema=TRAJECTORY_SCHEMA)


def run_suite(bench: Benchmark, proxies: pl.DataFrame, config: dict, on_run=None,
              only: tuple[str, str] | None = None) -> tuple[pl.DataFrame, list[str]]:
    """Trajectories of every configured algorithm on every searchable (dataset, hp); the skipped datasets.
    ``only=(algo, dataset)``: that algorithm on that dataset alone (one pipeline job of the suite)."""
    settings, skipped = searchable(bench)
    time_model = TimeModel(config["time_model"], config["gflops"])
    budgets = config["time_budget"]
    frames = []
    for dataset, hp in settings:
        if only and dataset != only[1]:
            continue
        if dataset not in budgets:
            raise InputError(f"search.time_budget has no entry for {dataset}; add `{dataset}: SECONDS` "
                             "(NATS-Bench TSS: 20000 cifar10-valid, 40000 cifar100, 120000 ImageNet16-120)")
        for algo in config["algorithms"]:
            if only and algo != only[0]:
                continue
            if algo == NASWOT:
                frames.append(naswot_search(bench, proxies, dataset, hp, config["naswot_samples"], config["runs"]))
            else:
                frames.append(run_search(bench, algo, dataset, hp, budgets[dataset], config["runs"],
                                         on_run=on_run, time_model=time_model,
                                         max_evaluations=config["max_evaluations"]))
    trajectories = pl.concat(frames) if frames else pl.DataFrame(schema=TRAJECTORY_SCHEMA)
    return trajectories.sort(TRAJECTORY_KEYS), skipped


def summary_markdown(summary: pl.DataFrame, skipped: list[str], config: dict) -> str:
    """Algorithms by row, (dataset, budget) by column, mean +- std test accuracy as NATS-Bench prints it."""
    settings = sorted(set(summary.select("dataset", "hp").iter_rows()))
    model = config["time_model"]
    lines = [
        "# NAS algorithms on this benchmark",
        "",
        f"Test accuracy (%) of each run's chosen arch, mean +- std over {config['runs']} runs. "
        f"Simulated time: the `{model}` time model"
        + (f" at {config.get('gflops', 100.0):g} GFLOP/s" if model == "flops" else " (this build's measured seconds)")
        + "; budgets " + ", ".join(f"{d} {s:g} s" for d, s in sorted(config["time_budget"].items())) + ". "
        f"`{NASWOT}` trains nothing: it scores {config['naswot_samples']} random archs at initialisation.",
        "",
        "| algorithm | " + " | ".join(f"{d} hp{h}" for d, h in settings) + " |",
        "|---|" + "---|" * len(settings),
    ]
    for algo in config["algorithms"]:
        cells = []
        for dataset, hp in settings:
            r = summary.filter((pl.col("algo") == algo) & (pl.col("dataset") == dataset) & (pl.col("hp") == hp))
            if not r.height:
                cells.append("-")
                continue
            mean, std = r["test_acc_mean"][0], r["test_acc_std"][0]
            cells.append(f"{mean:.2f} +- {std:.2f}" if std is not None else f"{mean:.2f}")
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", f"Not searched (no validation split): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


def trajectory_figure(trajectories: pl.DataFrame, budgets: dict[str, float], out: Path) -> Path:
    """Mean over runs of the incumbent's test accuracy against simulated time, per (dataset, budget)."""
    settings = sorted(set(trajectories.select("dataset", "hp").iter_rows()))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, max(len(settings), 1), figsize=(4.5 * max(len(settings), 1), 3.5), squeeze=False)
        for ax, (dataset, hp) in zip(axes[0], settings, strict=False):
            grid = np.linspace(0, budgets[dataset], 200)
            t = trajectories.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp))
            for algo in sorted(t["algo"].unique()):
                runs = t.filter(pl.col("algo") == algo).partition_by("run", maintain_order=True)
                if algo == NASWOT:
                    mean = np.mean([r.sort("step")["best_test_acc"][-1] for r in runs])
                    ax.axhline(mean, ls="--", lw=1, color="grey", label=f"{NASWOT} (no training)")
                    continue
                curves = []
                for r in runs:
                    r = r.sort("step")
                    at = np.searchsorted(r["simulated_seconds"].to_numpy(), grid, side="right") - 1
                    acc = r["best_test_acc"].to_numpy()
                    curves.append(np.where(at >= 0, acc[np.clip(at, 0, None)], np.nan))
                with warnings.catch_warnings():  # before a run's first evaluation there is no incumbent
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ax.plot(grid, np.nanmean(np.array(curves), axis=0), label=algo)
            ax.set(xlabel="simulated seconds", ylabel="test accuracy of the incumbent (%)", title=f"{dataset} hp{hp}")
            ax.legend(fontsize=7)
        return save_figure(fig, out / "search_trajectories.png")
