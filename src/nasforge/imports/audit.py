"""The audit of an imported benchmark: what its published numbers get wrong, arch by arch.

For a build, validation is a gate; for an import, the findings are the
product: the release is written with them. Each finding is computed with
polars over the imported tables (lazily over the per-epoch rows, so it runs
at NATS-Bench's full 40 million rows), lists every affected (dataset, budget,
arch) in ``validation/findings.parquet``, and is also a great-expectations
suite (the findings table should be empty), so the Data Docs show it. The
thresholds are the audit's params, written into ``audit.json``; none is tuned
to the numbers of a machine (they are properties of the published data).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from nasforge.data.registry import get_dataset
from nasforge.models.cost import cost
from nasforge.spaces import get_space
from nasforge.tables import write_table

FINDING_SCHEMA = {"finding": pl.String, "dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64,
                  "detail": pl.String}
FINDING_KEYS = ["finding", "dataset", "hp", "arch_index"]


@dataclass(frozen=True)
class AuditSettings:
    chance_tolerance: float = 2.0  # accuracy points an input-independent cell may lie above chance
    isomorphic_sigmas: float = 3.0  # how many standard errors of seed noise two isomorphic archs may differ by
    isomorphic_tolerance: float = 1.0  # plus this many accuracy points
    cost_tolerance: float = 1e-3  # relative difference of params/FLOPs from nasforge's exact cost model
    test_over_train: float = 15.0  # final test accuracy above final train accuracy by more than this
    pooled_tolerance: float = 0.05  # valtest vs the mean of valid and test (equal halves), accuracy points


DESCRIPTIONS = {
    "missing_arch": "archs of the space with no results for this dataset and budget",
    "missing_seeds": "archs trained with fewer seeds than most archs of this dataset and budget",
    "cost_differs_across_seeds": "params or FLOPs that differ between seeds of one arch (NATS-Bench then uses seed 888's)",
    "cost_differs_from_model": "params or FLOPs that differ from nasforge's exact count of the same network",
    "isomorphic_disagree": "archs whose final test accuracy differs from their isomorphism class's median beyond seed noise",
    "input_independent_above_chance": "cells whose output cannot depend on the input, yet score above chance",
    "times_identical_across_seeds": "per-epoch train times identical in every seed (copied or scaled, not measured)",
    "times_constant_across_epochs": "a run whose every epoch took exactly the same time (scaled, not measured)",
    "latency_identical_across_seeds": "latency identical in every seed of an arch (copied, not measured)",
    "non_finite": "non-finite losses, accuracies or times",
    "out_of_range": "accuracies outside 0..100, negative losses, non-positive times",
    "test_above_train": "final test accuracy far above final train accuracy",
    "valtest_not_pooled": "valtest (ori-test) is not the mean of valid and test, though it is their union of equal halves",
}


def _finding(name: str, frame: pl.DataFrame, detail: pl.Expr) -> pl.DataFrame:
    return frame.select(pl.lit(name).alias("finding"), "dataset", "hp", "arch_index", detail.alias("detail"))


def findings(tables: Path, space: str, settings: AuditSettings) -> pl.DataFrame:
    """Every finding, one row per affected (finding, dataset, hp, arch)."""
    sp = get_space(space)
    archs = pl.read_parquet(tables / "archs.parquet")
    epochs = pl.scan_parquet(tables / "epochs.parquet")
    times = pl.scan_parquet(tables / "run_times.parquet")
    costs = pl.read_parquet(tables / "run_costs.parquet")
    keys = ["dataset", "hp", "arch_index"]
    out = []

    # Coverage: archs and seeds absent.
    held = archs.select("dataset", "hp").unique()
    space_archs = pl.DataFrame({"arch_index": list(range(len(sp)))}, schema={"arch_index": pl.Int64})
    missing = held.join(space_archs, how="cross").join(archs.select(keys), on=keys, how="anti")
    out.append(_finding("missing_arch", missing, pl.lit("no results")))
    usual = (archs.group_by("dataset", "hp").agg(pl.col("n_seeds").mode().max().alias("usual")))
    few = archs.join(usual, on=["dataset", "hp"]).filter(pl.col("n_seeds") < pl.col("usual"))
    out.append(_finding("missing_seeds", few, pl.format("seeds {} of the usual {}", pl.col("seeds").cast(pl.List(pl.String))
                                                        .list.join(","), pl.col("usual"))))

    # Costs.
    per_arch = costs.group_by(keys).agg(
        pl.col("params").round(5).n_unique().alias("p"), pl.col("flops").round(5).n_unique().alias("f"),
        pl.col("params").min().alias("pmin"), pl.col("params").max().alias("pmax"),
        pl.col("flops").min().alias("fmin"), pl.col("flops").max().alias("fmax"),
        pl.col("latency").list.mean().n_unique().alias("lat"), pl.col("latency").is_not_null().all().alias("has_lat"),
        pl.len().alias("runs"))
    out.append(_finding("cost_differs_across_seeds", per_arch.filter((pl.col("p") > 1) | (pl.col("f") > 1)),
                        pl.format("params {}..{}, flops {}..{}", "pmin", "pmax", "fmin", "fmax")))
    out.append(_finding("latency_identical_across_seeds",
                        per_arch.filter((pl.col("runs") > 1) & pl.col("has_lat") & (pl.col("lat") == 1)),
                        pl.format("{} seeds, one latency", "runs")))
    model = []
    for dataset, index, arch in archs.select("dataset", "arch_index", "arch").unique(["dataset", "arch_index"]).sort(
            "dataset", "arch_index").iter_rows():
        spec = get_dataset(dataset)
        c = cost(space, arch, spec.num_classes, spec.size, spec.channels)
        model.append((dataset, index, c["params"], c["flops"]))
    model_frame = pl.DataFrame(model, schema={"dataset": pl.String, "arch_index": pl.Int64, "model_params": pl.Float64,
                                              "model_flops": pl.Float64}, orient="row")
    relative = archs.join(model_frame, on=["dataset", "arch_index"]).with_columns(
        ((pl.col("params") - pl.col("model_params")).abs() / pl.col("model_params")).alias("dp"),
        ((pl.col("flops") - pl.col("model_flops")).abs() / pl.col("model_flops")).alias("df"))
    out.append(_finding("cost_differs_from_model",
                        relative.filter((pl.col("dp") > settings.cost_tolerance) | (pl.col("df") > settings.cost_tolerance)),
                        pl.format("params {} (model {}), flops {} (model {})", "params", "model_params", "flops",
                                  "model_flops")))

    # Isomorphic archs: each against its class median, beyond seed noise.
    classes = archs.filter(pl.col("test_acc_mean").is_finite()).with_columns(
        pl.len().over("dataset", "hp", "canonical_index").alias("members"),
        pl.col("test_acc_mean").median().over("dataset", "hp", "canonical_index").alias("class_median"),
        pl.col("test_acc_std").pow(2).mean().over("dataset", "hp").sqrt().alias("noise"))
    se = pl.col("noise").fill_null(0.0) * (1 / pl.col("n_seeds") + 1 / pl.col("members")).sqrt()
    disagree = classes.filter((pl.col("members") > 1) & (
        (pl.col("test_acc_mean") - pl.col("class_median")).abs() > settings.isomorphic_sigmas * se + settings.isomorphic_tolerance))
    out.append(_finding("isomorphic_disagree", disagree, pl.format(
        "test {} vs class {} median {} ({} members)", pl.col("test_acc_mean").round(3), "canonical_index",
        pl.col("class_median").round(3), "members")))

    # Input-independent cells above chance.
    independent = [i for i in archs["arch_index"].unique().to_list() if sp.input_independent(sp.arch(i))]
    chance = archs.filter(pl.col("arch_index").is_in(independent)).with_columns(
        pl.col("dataset").replace_strict({d: 100.0 / get_dataset(d).num_classes for d in archs["dataset"].unique()},
                                         return_dtype=pl.Float64).alias("chance"))
    out.append(_finding("input_independent_above_chance",
                        chance.filter(pl.col("test_acc_mean") > pl.col("chance") + settings.chance_tolerance),
                        pl.format("test {} vs chance {}", pl.col("test_acc_mean").round(3), "chance")))

    # Times: copied across seeds, constant across epochs.
    run_keys = [*keys, "seed"]
    per_run = times.group_by(run_keys).agg(
        pl.col("train_seconds").hash().sum().alias("signature"), pl.col("train_seconds").n_unique().alias("distinct"),
        pl.col("train_seconds").is_not_null().all().alias("timed"), pl.len().alias("epochs")).collect(engine="streaming")
    timed = per_run.filter(pl.col("timed"))
    copied = timed.group_by(keys).agg(pl.col("signature").n_unique().alias("k"), pl.len().alias("seeds")).filter(
        (pl.col("seeds") > 1) & (pl.col("k") == 1))
    out.append(_finding("times_identical_across_seeds", copied, pl.format("{} seeds, one time series", "seeds")))
    constant = timed.filter((pl.col("epochs") > 1) & (pl.col("distinct") == 1)).group_by(keys).agg(
        pl.col("seed").sort().cast(pl.String).str.join(",").alias("seeds"))
    out.append(_finding("times_constant_across_epochs", constant, pl.format("seeds {}", "seeds")))

    # Values: non-finite, out of range (per-epoch metrics and per-epoch times, each in one streaming pass).
    accs = [c for c in pl.read_parquet_schema(tables / "epochs.parquet") if c.endswith("_acc")]
    losses = [c.replace("_acc", "_loss") for c in accs]
    seconds = ["train_seconds", "valid_seconds", "test_seconds", "valtest_seconds"]

    def non_finite(columns: list[str]) -> pl.Expr:
        return pl.any_horizontal([pl.col(c).is_not_null() & ~pl.col(c).is_finite() for c in columns])

    checks = {
        "non_finite": [(epochs, non_finite(accs + losses)), (times, non_finite(seconds))],
        "out_of_range": [
            (epochs, pl.any_horizontal([pl.col(c).is_finite() & ~pl.col(c).is_between(0, 100) for c in accs]
                                       + [pl.col(c).is_finite() & (pl.col(c) < 0) for c in losses])),
            (times, pl.any_horizontal([pl.col(c).is_finite() & (pl.col(c) <= 0) for c in seconds]))],
    }
    for name, scans in checks.items():
        rows = pl.concat([scan.filter(condition).select(*keys, "epoch").collect(engine="streaming")
                          for scan, condition in scans])
        rows = rows.group_by(keys).agg(pl.len().alias("n"), pl.col("epoch").min().alias("first"))
        out.append(_finding(name, rows, pl.format("{} epoch row(s), first at epoch {}", "n", "first")))

    # Train/valid/test consistency at the last epoch.
    final = archs.with_columns((pl.col("test_acc_mean") - pl.col("train_acc_mean")).alias("gap"))
    out.append(_finding("test_above_train", final.filter(pl.col("gap") > settings.test_over_train),
                        pl.format("test {} vs train {}", pl.col("test_acc_mean").round(3), pl.col("train_acc_mean").round(3))))
    pooled = epochs.filter(pl.col("valtest_acc").is_not_null() & pl.col("valid_acc").is_not_null()
                           & pl.col("test_acc").is_not_null()).with_columns(
        ((pl.col("valid_acc") + pl.col("test_acc")) / 2 - pl.col("valtest_acc")).abs().alias("off"))
    pooled = pooled.filter(pl.col("off") > settings.pooled_tolerance).group_by(keys).agg(
        pl.len().alias("n"), pl.col("off").max().alias("worst")).collect(engine="streaming")
    out.append(_finding("valtest_not_pooled", pooled, pl.format("{} epoch row(s), off by up to {}", "n",
                                                               pl.col("worst").round(4))))
    return pl.concat([f.cast(FINDING_SCHEMA) for f in out]).sort(FINDING_KEYS)


def _suites(found: pl.DataFrame) -> dict[str, tuple[pl.DataFrame, list]]:
    import great_expectations.expectations as gxe

    suites = {}
    for name in DESCRIPTIONS:
        rows = found.filter(pl.col("finding") == name).drop("finding")
        suites[name] = (rows, [gxe.ExpectTableRowCountToEqual(value=0)])
    return suites


def audit(tables: Path, space: str, out: Path, settings: AuditSettings | None = None) -> dict:
    """Write ``findings.parquet``, ``audit.json``, the Data Docs and ``summary.json`` under ``out``; never
    raises on a finding (an import is written with its findings)."""
    from nasforge.validate import run_suites

    settings = settings or AuditSettings()
    found = findings(tables, space, settings)
    write_table(found, out / "findings.parquet", FINDING_KEYS)
    run_suites(_suites(found), out, space)
    counts = found.group_by("finding").agg(pl.len(), pl.col("arch_index").n_unique().alias("archs"))
    by_name = {f: {"rows": n, "archs": a} for f, n, a in counts.iter_rows()}
    summary = {"space": space, "settings": asdict(settings), "findings": {
        name: {"description": DESCRIPTIONS[name], **by_name.get(name, {"rows": 0, "archs": 0}),
               "examples": found.filter(pl.col("finding") == name).head(5).drop("finding").to_dicts()}
        for name in DESCRIPTIONS}}
    (out / "audit.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
