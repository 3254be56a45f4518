"""Every weight-sharing search result given its true accuracy, then the phase's table, figure and summary.

A derived arch is scored the way NATS-Bench scores one (``api.query_by_arch(genotype, "200")``): by
the benchmark's accuracy of that arch, here the mean over the release's seeds of the last epoch of
its largest budget. Archs the benchmark holds are looked up in its tables; the others (a sampled
benchmark holds a few archs; an SSS search on a TSS benchmark holds none) are trained here under the
protocol the benchmark's shards recorded (``protocols.json``), by the train phase's own job, for
every budget and seed of the release, and kept as ``added_epochs.parquet``: the release carries them
beside, not inside, its benchmark tables, whose sample they would bias.

``results/oneshot/``::

    results.parquet       one row per (algorithm, selection, dataset, seed, epoch): the search's row
                          and its derived arch's true accuracy, source (benchmark or added), cost and
                          parameter-free edges (TSS)
    added_epochs.parquet  per-epoch training rows of the archs trained here
    summary.parquet       per (algorithm, selection, dataset): final arch's test accuracy, mean and std
                          over search seeds, divergences, parameter-free edges
    summary.md            that table beside the multi-trial algorithms' and the budget it ran under
    oneshot_search.png    derived arch's test accuracy against search epoch, per algorithm
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from nasforge.analysis import STYLE, save_figure
from nasforge.data.prepare import read_manifest
from nasforge.errors import MissingInputError
from nasforge.files import read_checked, write_checked
from nasforge.models import cost
from nasforge.oneshot.search import SEARCH_SCHEMA, SEARCH_TIMING_SCHEMA
from nasforge.paths import PROTOCOLS, Results
from nasforge.protocol import Protocol
from nasforge.schema import EPOCHS_SCHEMA, SHARD_KEYS
from nasforge.spaces import get_space
from nasforge.tables import read_table, write_table
from nasforge.train.shard import ShardJob, run_shard

RUN_HINT = "rerun its search job (snakemake phase_oneshot)"
PARAM_FREE = ("none", "skip_connect", "avg_pool_3x3")
RESULT_SCHEMA = {**SEARCH_SCHEMA, "found_test_acc": pl.Float64, "found_valid_acc": pl.Float64,
                 "found_seeds": pl.Int64, "source": pl.String, "params": pl.Float64, "flops": pl.Float64,
                 "param_free_edges": pl.Int64, "skip_edges": pl.Int64}
RESULT_KEYS = ["algorithm", "dataset", "seed", "selection", "epoch"]
SUMMARY_SCHEMA = {"space": pl.String, "algorithm": pl.String, "selection": pl.String, "dataset": pl.String,
                  "runs": pl.Int64, "diverged_runs": pl.Int64, "test_acc_mean": pl.Float64, "test_acc_std": pl.Float64,
                  "param_free_edges_mean": pl.Float64, "skip_edges_mean": pl.Float64, "archs": pl.List(pl.String)}
SUMMARY_KEYS = ["space", "algorithm", "selection", "dataset"]


def label(algorithm: str, selection: str) -> str:
    return f"{algorithm} + darts-pt" if selection == "darts-pt" else algorithm


def gather_runs(params: dict, results: Results, measured: bool = False) -> pl.DataFrame:
    o = params["oneshot"]
    frames = []
    for method in o["algorithms"]:
        for dataset in params["datasets"]:
            for seed in o["seeds"]:
                path = Path(results.oneshot_run(method, dataset, seed, measured=measured))
                if not path.is_file():
                    raise MissingInputError(f"{path}: missing; {RUN_HINT}")
                frames.append(read_table(path, RUN_HINT))
    schema = SEARCH_TIMING_SCHEMA if measured else SEARCH_SCHEMA
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def _benchmark_epochs(params: dict, results: Results) -> tuple[pl.DataFrame, dict]:
    space = params["space"]
    hint = "rerun the aggregate phase (snakemake phase_aggregate)"
    epochs = read_table(results.aggregate_table(space, "epochs"), hint)
    protocols = json.loads(read_checked(Path(results.aggregate(space)) / PROTOCOLS, hint))
    return epochs, protocols


def train_missing(params: dict, results: Results, runs: pl.DataFrame, epochs: pl.DataFrame,
                  protocols: dict, jobs: int = 1) -> pl.DataFrame:
    """Train, per dataset and space, the derived archs the benchmark lacks: one train job per (budget, seed),
    ``jobs`` of them at a time in their own processes (each pinned to the configured threads, so the bytes
    do not depend on ``jobs``)."""
    train = params["train"]
    todo, outs = [], []
    for dataset in params["datasets"]:
        derived = runs.filter((pl.col("dataset") == dataset) & pl.col("arch_index").is_not_null())
        for space in sorted(derived["space"].unique()):
            have = set(epochs.filter((pl.col("space") == space) & (pl.col("dataset") == dataset))["arch_index"])
            missing = sorted(set(derived.filter(pl.col("space") == space)["arch_index"]) - have)
            if not missing:
                continue
            for hp in train["budgets"]:
                for seed in train["seeds"]:
                    job = ShardJob(space=space, dataset=dataset, hp=hp, seed=seed, archs=missing,
                                   data=Path(results.data(dataset)), out=Path(results.oneshot_added(space, dataset, hp, seed)),
                                   timing_out=Path(results.oneshot_added(space, dataset, hp, seed, "timing")),
                                   cost_out=Path(results.oneshot_added(space, dataset, hp, seed, "cost")),
                                   protocol=Protocol(**protocols[hp]["protocol"]), engine=train["engine"],
                                   device=train["device"], threads=train["threads"], latency_repeats=0)
                    outs.append(job.out)
                    if not (Path(job.out).is_file() and sorted(set(read_table(job.out, RUN_HINT)["arch_index"])) == missing):
                        print(f"training {len(missing)} derived {space} archs the benchmark lacks on {dataset} "
                              f"(hp{hp}, seed {seed})", flush=True)
                        todo.append(job)
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(run_shard, todo))
    else:
        for job in todo:
            run_shard(job)
    frames = [read_table(out, RUN_HINT) for out in outs]
    return pl.concat(frames).sort(SHARD_KEYS) if frames else pl.DataFrame(schema=EPOCHS_SCHEMA)


def _truth(epochs: pl.DataFrame, hp: str) -> pl.DataFrame:
    """Per (space, dataset, arch): the last epoch's accuracies at budget ``hp``, mean over seeds."""
    last = (epochs.filter(pl.col("hp") == hp).sort("epoch")
            .group_by("space", "dataset", "arch_index", "seed", maintain_order=True).last())
    return last.group_by("space", "dataset", "arch_index").agg(
        pl.col("test_acc").mean().alias("found_test_acc"), pl.col("valid_acc").mean().alias("found_valid_acc"),
        pl.len().cast(pl.Int64).alias("found_seeds"))


def _arch_features(space: str | None, arch: str | None, manifest: dict) -> dict:
    if arch is None:
        return {"params": None, "flops": None, "param_free_edges": None, "skip_edges": None}
    c = cost(space, arch, manifest["num_classes"], manifest["shape"][1], manifest["shape"][0])
    ops = get_space("tss").parse(arch) if space == "tss" else None
    return {"params": c["params"], "flops": c["flops"],
            "param_free_edges": sum(op in PARAM_FREE for op in ops) if ops else None,
            "skip_edges": sum(op == "skip_connect" for op in ops) if ops else None}


def score(params: dict, results: Results, jobs: int = 1) -> dict[str, Path]:
    """Write every file of ``results/oneshot/`` (module docstring) and the searches' gathered seconds."""
    runs = gather_runs(params, results)
    epochs, protocols = _benchmark_epochs(params, results)
    added = train_missing(params, results, runs, epochs, protocols, jobs)
    final_hp = max(params["train"]["budgets"], key=int)
    truth = _truth(pl.concat([epochs.select(list(EPOCHS_SCHEMA)), added.select(list(EPOCHS_SCHEMA))]), final_hp)
    in_bench = epochs.select("space", "dataset", "arch_index").unique().with_columns(pl.lit("benchmark").alias("source"))
    table = (runs.join(truth, on=["space", "dataset", "arch_index"], how="left")
             .join(in_bench, on=["space", "dataset", "arch_index"], how="left")
             .with_columns(pl.when(pl.col("arch_index").is_null()).then(None)
                           .otherwise(pl.col("source").fill_null("added")).alias("source")))
    manifests = {d: read_manifest(Path(results.data(d))) for d in table["dataset"].unique()}  # once, not per row
    features = [_arch_features(s, a, manifests[d]) for s, a, d in table.select("space", "arch", "dataset").iter_rows()]
    table = pl.concat([table, pl.DataFrame(features, schema={k: RESULT_SCHEMA[k] for k in
                                                             ("params", "flops", "param_free_edges", "skip_edges")})],
                      how="horizontal").select(list(RESULT_SCHEMA)).cast(RESULT_SCHEMA)
    out = Path(results.oneshot())
    paths = {"results": write_table(table, out / "results.parquet", RESULT_KEYS),
             "added_epochs": write_table(added, out / "added_epochs.parquet", SHARD_KEYS)}
    summary = summarise(table)
    paths["summary"] = write_table(summary, out / "summary.parquet", SUMMARY_KEYS)
    multi_trial = _multi_trial(params, results, final_hp)
    paths["markdown"] = write_checked(out / "summary.md", summary_markdown(summary, multi_trial, params, final_hp).encode())
    paths["figure"] = figure(table, out / "oneshot_search.png")
    seconds = gather_runs(params, results, measured=True)
    paths["seconds"] = write_table(seconds, Path(results.root) / "measured" / "oneshot" / "seconds.parquet", RESULT_KEYS)
    return paths


def final_rows(table: pl.DataFrame) -> pl.DataFrame:
    """Each run's result: its last row per selection (the derived arch after the last epoch, DARTS-PT's
    pick), or the row it diverged in."""
    return table.sort("epoch").group_by("algorithm", "selection", "dataset", "seed", maintain_order=True).last()


def summarise(table: pl.DataFrame) -> pl.DataFrame:
    final = final_rows(table)
    rows = []
    for (space, algorithm, selection, dataset), group in sorted(
            final.group_by("space", "algorithm", "selection", "dataset"), key=lambda kv: kv[0]):
        ok = group.filter(~pl.col("diverged"))
        acc = ok["found_test_acc"].drop_nulls()
        rows.append({"space": space, "algorithm": algorithm, "selection": selection, "dataset": dataset,
                     "runs": group.height, "diverged_runs": group.height - ok.height,
                     "test_acc_mean": acc.mean() if len(acc) else None,
                     "test_acc_std": acc.std() if len(acc) > 1 else None,
                     "param_free_edges_mean": ok["param_free_edges"].mean() if space == "tss" and ok.height else None,
                     "skip_edges_mean": ok["skip_edges"].mean() if space == "tss" and ok.height else None,
                     "archs": sorted(ok["arch"].to_list())})
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)


def _multi_trial(params: dict, results: Results, hp: str) -> pl.DataFrame | None:
    path = Path(results.search_file(params["space"], "summary.parquet"))
    if not path.is_file():
        return None
    return read_table(path, "rerun the search phase (snakemake phase_search)").filter(pl.col("hp") == hp)


def _cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f} +- {std:.2f}" if std is not None else f"{mean:.2f}"


def summary_markdown(summary: pl.DataFrame, multi_trial: pl.DataFrame | None, params: dict, hp: str) -> str:
    o = params["oneshot"]
    datasets = params["datasets"]
    if not o["algorithms"]:
        return ("# Weight-sharing NAS on this benchmark\n\nNo weight-sharing search was configured "
                "(params.yaml's `oneshot.algorithms` is empty), so this phase's tables are empty.\n")
    lines = [
        "# Weight-sharing NAS on this benchmark", "",
        f"Test accuracy (%) of the arch each search derives after its last epoch, scored by this benchmark "
        f"(hp{hp}, mean over its seeds; archs it lacked were trained under its protocol and are in "
        f"`added_epochs.parquet`); mean +- std over search seeds {o['seeds']}. Search budget: "
        + ", ".join(f"{space.upper()} {n} epoch{'s' * (n != 1)}" for space, n in sorted(o["epochs"].items()))
        + (f" of at most {o['steps_per_epoch']} steps" if o["steps_per_epoch"] else " over the whole training split")
        + f" (batch {o['protocol'].get('batch_size', 64)}); TSS supernet C={o['channels']}, "
        f"N={o['cells_per_stage']}; {o['candidates']} candidates scored by SETN, RSPS and ENAS. "
        + (o.get("budget_note") or ""), "",
        "| algorithm | space | " + " | ".join(datasets) + " | param-free edges (TSS, of 6) |",
        "|---|---|" + "---|" * len(datasets) + "---|",
    ]
    keys = sorted(set(summary.select("space", "algorithm", "selection").iter_rows()),
                  key=lambda k: (k[0] == "sss", o["algorithms"].index(k[1]), k[2] == "darts-pt"))
    for space, algorithm, selection in keys:
        cells, free = [], []
        for dataset in datasets:
            r = summary.filter((pl.col("algorithm") == algorithm) & (pl.col("selection") == selection)
                               & (pl.col("dataset") == dataset))
            if not r.height:
                cells.append("-")
                continue
            text = _cell(r["test_acc_mean"][0], r["test_acc_std"][0])
            if r["diverged_runs"][0]:
                text += f" ({r['diverged_runs'][0]} of {r['runs'][0]} diverged)"
            cells.append(text)
            if r["param_free_edges_mean"][0] is not None:
                free.append(f"{r['param_free_edges_mean'][0]:.1f}")
        lines.append(f"| {label(algorithm, selection)} | {space} | " + " | ".join(cells) + f" | {' / '.join(free) or '-'} |")
    if multi_trial is not None and multi_trial.height:
        lines += ["", f"Multi-trial and training-free algorithms on the same benchmark (hp{hp}, the search phase):", "",
                  "| algorithm | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
        for algo in multi_trial["algo"].unique(maintain_order=True):
            cells = []
            for dataset in datasets:
                r = multi_trial.filter((pl.col("algo") == algo) & (pl.col("dataset") == dataset))
                cells.append(_cell(r["test_acc_mean"][0], r["test_acc_std"][0]) if r.height else "-")
            lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    lines += ["", *failure_modes(summary)]
    return "\n".join(lines) + "\n"


def failure_modes(summary: pl.DataFrame) -> list[str]:
    """What NATS-Bench reports of these searches (divergence; DARTS' collapse onto parameter-free ops),
    checked on this build rather than assumed. A uniformly random cell has 3.6 of its 6 edges
    parameter-free (none, skip, pooling) and 1.2 skip connections; 5 or more marks a collapse."""
    notes = []
    for row in summary.iter_rows(named=True):
        name = f"{label(row['algorithm'], row['selection'])} on {row['dataset']}"
        if row["diverged_runs"]:
            notes.append(f"- {name}: {row['diverged_runs']} of {row['runs']} searches diverged (the supernet's "
                         "training loss stopped being finite); recorded with no derived arch.")
        free = row["param_free_edges_mean"]  # over the runs that did not diverge (None: SSS, or none did)
        if free is not None and free >= 5:
            notes.append(f"- {name}: collapsed onto parameter-free ops ({free:.1f} of 6 edges none, skip or "
                         f"pooling; {row['skip_edges_mean']:.1f} skip connections), the failure "
                         "NATS-Bench and DARTS-PT report for DARTS.")
    if notes:
        return ["Failure modes seen in this build:", "", *notes]
    return ["Failure modes: no search diverged, and none derived a cell with 5 or more of its 6 edges "
            "parameter-free (a uniformly random cell has 3.6)."]


def figure(table: pl.DataFrame, path: Path) -> Path:
    """Derived arch's test accuracy against search epoch, mean over seeds, one line per algorithm
    (DARTS-PT's pick as a marker after the last epoch), one panel per dataset."""
    datasets = sorted(table["dataset"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(5.5 * max(len(datasets), 1), 3.8), squeeze=False)
        for ax, dataset in zip(axes[0], datasets, strict=False):
            t = table.filter((pl.col("dataset") == dataset) & ~pl.col("diverged"))
            for (algorithm, selection), g in sorted(t.group_by("algorithm", "selection"), key=lambda kv: kv[0]):
                curve = g.group_by("epoch").agg(pl.col("found_test_acc").mean()).sort("epoch")
                if selection == "darts-pt":
                    ax.plot(curve["epoch"] + 0.15, curve["found_test_acc"], "*", ms=9, label=label(algorithm, selection))
                else:
                    ax.plot(curve["epoch"], curve["found_test_acc"], "o-", ms=3, label=algorithm)
            ax.set(xlabel="search epoch", ylabel="derived arch's test accuracy (%)", title=dataset)
            ax.legend(fontsize=6, ncol=2)
        if not datasets:
            axes[0][0].text(0.5, 0.5, "no weight-sharing search configured", ha="center", va="center")
            axes[0][0].set_axis_off()
        return save_figure(fig, path)
