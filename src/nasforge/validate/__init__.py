"""The validate phase: audit a space's tables with great-expectations before release.

Suites run on pandas copies of the tables (great-expectations has no polars
support) and on small derived tables for the checks that need computation
(schema, cost model, isomorphic agreement, chance level, seed spread), so
every check, simple or not, is a GE expectation with its result in the Data
Docs. great_expectations is imported inside ``validate`` only: it is slow to
import and no other step needs it.

Writes ``results/validate/{space}/``: ``validation.json`` (every expectation,
its success and what it observed), ``docs/`` (Data Docs, made byte-stable:
a fixed run time, build stamps and UUIDs replaced, the remote logo pointed at the local copy)
and, only when every expectation holds, ``summary.json``, the phase's output.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from nasforge.data.registry import get_dataset
from nasforge.errors import NasforgeError
from nasforge.files import write_checked
from nasforge.models.cost import cost
from nasforge.protocol import trained_epochs
from nasforge.schema import ARCH_KEYS, EPOCH_KEYS, EPOCHS_SCHEMA, METRICS
from nasforge.spaces import get_space
from nasforge.tables import read_table

AGGREGATE_HINT = "rerun the aggregate phase (snakemake phase_aggregate)"

RUN_TIME = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # fixed: Data Docs paths embed it


class ValidationFailed(NasforgeError):
    """At least one expectation failed; the message lists them and where the report is."""

    exit_code = 1  # the tables were audited and failed: not a usage error
    label = "validation failed"


@dataclass(frozen=True)
class Expected:
    """What the tables must hold, from params.yaml."""

    space: str
    archs: list[int]
    datasets: list[str]
    budgets: list[str]
    epochs: dict[str, int]  # epochs trained per budget: the budget plus any warm-up
    seeds: list[int]
    chance_tolerance: float
    isomorphic_tolerance: float
    seed_spread_max: float
    seed_spread_median_max: float


def _schema_frame(table: pl.DataFrame, expected: dict) -> pl.DataFrame:
    names = sorted(set(table.columns) | set(expected))
    return pl.DataFrame({
        "column": names,
        "dtype": [str(table.schema.get(n, "missing")) for n in names],
        "expected_dtype": [str(expected.get(n, "unexpected")) for n in names],
    })


def _cost_frame(archs: pl.DataFrame, space: str) -> pl.DataFrame:
    rows = []
    for dataset, index, arch, params, flops in archs.select("dataset", "arch_index", "arch", "params", "flops").iter_rows():
        spec = get_dataset(dataset)
        model = cost(space, arch, spec.num_classes, spec.size, spec.channels)
        rows.append({"dataset": dataset, "arch_index": index, "params_error": abs(params - model["params"]),
                     "flops_error": abs(flops - model["flops"])})
    return pl.DataFrame(rows, schema={"dataset": pl.String, "arch_index": pl.Int64, "params_error": pl.Float64,
                                      "flops_error": pl.Float64})


def _isomorphic_frame(archs: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """Per pair of isomorphic archs: how far their seed means differ beyond 3 standard errors + tolerance."""
    rows = []
    ok = archs.filter(~pl.col("diverged"))
    for (dataset, hp, _canonical), group in ok.group_by(["dataset", "hp", "canonical_index"], maintain_order=True):
        members = group.sort("arch_index").select("arch_index", "test_acc_mean", "test_acc_std", "n_seeds").rows()
        for i, (a, mean_a, sd_a, n_a) in enumerate(members):
            for b, mean_b, sd_b, n_b in members[i + 1 :]:
                se = math.sqrt((sd_a or 0.0) ** 2 / n_a + (sd_b or 0.0) ** 2 / n_b)
                rows.append({"dataset": dataset, "hp": hp, "arch_a": a, "arch_b": b,
                             "difference": abs(mean_a - mean_b), "excess": abs(mean_a - mean_b) - 3 * se - tolerance})
    return pl.DataFrame(rows, schema={"dataset": pl.String, "hp": pl.String, "arch_a": pl.Int64, "arch_b": pl.Int64,
                                      "difference": pl.Float64, "excess": pl.Float64})


def _chance_frame(archs: pl.DataFrame, space: str) -> pl.DataFrame:
    """Archs whose output cannot depend on the input (every path to the output is cut by ``none``)."""
    rows = []
    sp = get_space(space)
    for dataset, hp, index, arch, acc in archs.select("dataset", "hp", "arch_index", "arch", "test_acc_mean").iter_rows():
        if sp.input_independent(arch):
            chance = 100.0 / get_dataset(dataset).num_classes
            rows.append({"dataset": dataset, "hp": hp, "arch_index": index, "test_acc_mean": acc,
                         "distance_from_chance": abs(acc - chance)})
    return pl.DataFrame(rows, schema={"dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64,
                                      "test_acc_mean": pl.Float64, "distance_from_chance": pl.Float64})


def _seed_spread_frame(archs: pl.DataFrame) -> pl.DataFrame:
    """Per (dataset, hp): the median over archs of the seed std of final test accuracy. One chaotic
    arch moves it little; a broken seed or rows joined to the wrong arch move every arch, and it."""
    return (archs.filter(~pl.col("diverged")).group_by(["dataset", "hp"], maintain_order=True)
            .agg(pl.col("test_acc_std").median().alias("median_test_acc_std"), pl.len().alias("archs"))
            .sort("dataset", "hp"))


def _same(a: float | None, b: float | None) -> bool:
    """Equal values, where two missing (None/NaN) values count as equal: a seed mean is
    recomputed by the same arithmetic, so anything beyond rounding is a real disagreement."""
    a_missing, b_missing = a is None or math.isnan(a), b is None or math.isnan(b)
    if a_missing or b_missing:
        return a_missing and b_missing
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _consistency_frame(epochs: pl.DataFrame, archs: pl.DataFrame) -> pl.DataFrame:
    """Per row of archs.parquet, what disagrees with epochs.parquet: its seed list, a per-seed final
    value, a mean that is not the mean of its seeds, the diverged flag; and a diverged arch whose
    diverged epochs still carry a finite accuracy. Aggregation derives one table from the other, so
    any disagreement means one of them was changed after it."""
    last = pl.col("epoch") == pl.col("epoch").max().over([*ARCH_KEYS, "seed"])
    final = (epochs.filter(last).sort([*ARCH_KEYS, "seed"]).group_by(ARCH_KEYS, maintain_order=True)
             .agg(pl.col("seed").alias("e_seeds"), *[pl.col(m).alias(f"e_{m}") for m in METRICS]))
    stray = (epochs.filter(pl.col("diverged") & pl.any_horizontal([pl.col(m).is_finite() for m in METRICS
                                                                     if m.endswith("_acc")]))
             .group_by(ARCH_KEYS).agg(pl.len().alias("finite_diverged")))
    flags = epochs.group_by(ARCH_KEYS).agg(pl.col("diverged").any().alias("e_diverged"))
    joined = (archs.join(final, on=ARCH_KEYS, how="left").join(flags, on=ARCH_KEYS, how="left")
              .join(stray, on=ARCH_KEYS, how="left").sort(ARCH_KEYS))
    rows = []
    for r in joined.iter_rows(named=True):
        problems = []
        if r["e_seeds"] is None:
            problems.append("no rows in epochs.parquet")
        else:
            if list(r["seeds"]) != list(r["e_seeds"]):
                problems.append(f"seeds {r['seeds']} but epochs.parquet has {r['e_seeds']}")
            for m in METRICS:
                values, truth = r[f"{m}_seeds"] or [], r[f"e_{m}"] or []
                if len(values) != len(truth) or not all(_same(a, b) for a, b in zip(values, truth, strict=False)):
                    problems.append(f"{m}_seeds differ from the final epochs")
                present = [v for v in values if v is not None]
                mean = sum(present) / len(present) if present else None
                if not _same(r[f"{m}_mean"], mean):
                    problems.append(f"{m}_mean is not the mean of {m}_seeds")
            if r["diverged"] != r["e_diverged"]:
                problems.append(f"diverged={r['diverged']} but epochs.parquet says {r['e_diverged']}")
        if r["finite_diverged"]:
            problems.append(f"{r['finite_diverged']} diverged epoch row(s) with a finite accuracy")
        rows.append({"dataset": r["dataset"], "hp": r["hp"], "arch_index": r["arch_index"],
                     "problems": len(problems), "detail": "; ".join(problems)})
    return pl.DataFrame(rows, schema={"dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64,
                                      "problems": pl.Int64, "detail": pl.String})


def _suites(epochs: pl.DataFrame, archs: pl.DataFrame, e: Expected) -> dict[str, tuple[pl.DataFrame, list]]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    n_archs, n_settings = len(e.archs), len(e.datasets) * len(e.budgets)
    epoch_rows = n_archs * len(e.datasets) * len(e.seeds) * sum(e.epochs[h] for h in e.budgets)
    ok = Column("diverged") == False  # noqa: E712 - builds a GE condition, not a Python comparison
    with_split = {
        "valid": [d for d in e.datasets if "valid" in get_dataset(d).eval_splits],
        "valtest": [d for d in e.datasets if get_dataset(d).valtest],
    }
    acc_cols = [m for m in METRICS if m.endswith("_acc")]
    loss_cols = [m for m in METRICS if m.endswith("_loss")]

    def conditioned(col: str):
        split = col.rsplit("_", 1)[0]
        return ok & Column("dataset").is_in(with_split[split]) if split in with_split else ok

    epochs_suite = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(EPOCHS_SCHEMA)),
        gxe.ExpectTableRowCountToEqual(value=epoch_rows),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=EPOCH_KEYS),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="arch_index", value_set=e.archs),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="seed", value_set=e.seeds),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="dataset", value_set=e.datasets),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="hp", value_set=e.budgets),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in EPOCHS_SCHEMA if c not in METRICS],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c, row_condition=conditioned(c))
          for c in METRICS],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=100) for c in acc_cols],
        # A finite loss: cross-entropy is never negative, and 1e6 is far past any diverging run.
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1e6, row_condition=conditioned(c)) for c in loss_cols],
    ]
    archs_suite = [
        gxe.ExpectTableRowCountToEqual(value=n_archs * n_settings),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=ARCH_KEYS),
        gxe.ExpectColumnValuesToBeBetween(column="n_seeds", min_value=len(e.seeds), max_value=len(e.seeds)),
        gxe.ExpectColumnValuesToBeBetween(column="test_acc_mean", min_value=0, max_value=100,
                                          row_condition=ok),
        gxe.ExpectColumnValuesToNotBeNull(column="test_acc_mean", row_condition=ok),
        gxe.ExpectColumnValuesToNotBeNull(column="canonical_index"),
    ]
    derived = {}
    if len(e.seeds) > 1:
        archs_suite.append(gxe.ExpectColumnValuesToBeBetween(
            column="test_acc_std", min_value=0, max_value=e.seed_spread_max, row_condition=ok))
        derived["seed_spread"] = (_seed_spread_frame(archs), [gxe.ExpectColumnValuesToBeBetween(
            column="median_test_acc_std", min_value=0, max_value=e.seed_spread_median_max)])
    schema = _schema_frame(epochs, EPOCHS_SCHEMA)
    return {
        "epochs": (epochs, epochs_suite),
        "archs": (archs.drop([c for c in archs.columns if archs.schema[c] == pl.List]), archs_suite),
        "schema": (schema, [gxe.ExpectColumnPairValuesToBeEqual(column_A="dtype", column_B="expected_dtype")]),
        "cost_model": (_cost_frame(archs, e.space), [
            gxe.ExpectColumnMaxToBeBetween(column="params_error", max_value=1e-9),
            gxe.ExpectColumnMaxToBeBetween(column="flops_error", max_value=1e-9)]),
        "isomorphic": (_isomorphic_frame(archs, e.isomorphic_tolerance), [
            gxe.ExpectColumnValuesToBeBetween(column="excess", max_value=0.0)]),
        "consistency": (_consistency_frame(epochs, archs), [
            gxe.ExpectColumnValuesToBeInSet(column="detail", value_set=[""])]),  # the report lists what differs
        "chance": (_chance_frame(archs, e.space), [
            gxe.ExpectColumnValuesToBeBetween(column="distance_from_chance", min_value=0, max_value=e.chance_tolerance)]),
        **derived,
    }


def run_suites(suites: dict[str, tuple[pl.DataFrame, list]], out: Path, space: str) -> dict:
    """Run each (frame, expectations) suite in one great-expectations context; write the Data Docs
    (byte-stable) to ``out/docs`` and return the report: per suite, every expectation's result."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    report = {"space": space, "great_expectations": gx.__version__, "suites": {}}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        context = gx.get_context(mode="file", project_root_dir=tmp)
        # No progress bars: they fill the log with timings, the one thing a rerun must not change.
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_pandas("nasforge")
        for name, (frame, expectations) in suites.items():
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all rows")
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            for expectation in expectations:
                suite.add_expectation(expectation)
            definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            checkpoint = context.checkpoints.add(gx.Checkpoint(
                name=name, validation_definitions=[definition], result_format="SUMMARY",
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")]))
            result = checkpoint.run(batch_parameters={"dataframe": frame.to_pandas()},
                                    run_id=RunIdentifier(run_name="nasforge", run_time=RUN_TIME))
            report["suites"][name] = _summarise(result, frame.height)
        docs = out / "docs"
        shutil.rmtree(docs, ignore_errors=True)
        shutil.copytree(Path(tmp) / "gx/uncommitted/data_docs/local_site", docs)
    _stabilise_docs(docs)
    return report


def validate(epochs_path: Path, archs_path: Path, expected: Expected, out: Path) -> dict:
    """Run every suite; write the report and Data Docs; raise ValidationFailed if anything failed."""
    epochs, archs = read_table(epochs_path, AGGREGATE_HINT), read_table(archs_path, AGGREGATE_HINT)
    suites = _suites(epochs, archs, expected)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    report = run_suites(suites, out, expected.space)
    docs = out / "docs"
    failed = [f"{s}: {x['expectation']} {x['kwargs']} observed {x['observed']}"
              for s, suite in report["suites"].items() for x in suite["expectations"] if not x["success"]]
    report["success"] = not failed
    (out / "validation.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    if failed:
        listing = "\n".join(f"  - {f}" for f in failed)
        raise ValidationFailed(f"{len(failed)} expectation(s) failed; report in {out / 'validation.json'} "
                               f"and {docs / 'index.html'}:\n{listing}")
    summary = {"space": expected.space, "success": True,
               "expectations": sum(len(s["expectations"]) for s in report["suites"].values()),
               "rows": {name: s["rows"] for name, s in report["suites"].items()}}
    write_checked(out / "summary.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    return summary


def _summarise(result, rows: int) -> dict:
    expectations = []
    for run in result.run_results.values():
        for r in run.results:
            kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
            observed = r.result.get("observed_value", r.result.get("unexpected_count"))
            if isinstance(observed, float) and not math.isfinite(observed):
                observed = str(observed)
            expectations.append({"expectation": r.expectation_config.type, "kwargs": kwargs,
                                 "success": bool(r.success), "observed": observed,
                                 "unexpected": r.result.get("partial_unexpected_list", [])[:10]})
    expectations.sort(key=lambda x: (x["expectation"], json.dumps(x["kwargs"], sort_keys=True, default=str)))
    return {"rows": rows, "success": all(x["success"] for x in expectations), "expectations": expectations}


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STAMP = re.compile(r"\b\d{8}T\d{6}\.\d{6}Z\b")  # when the docs were built
_REMOTE_LOGO = re.compile(r"https://great-expectations-web-assets\.[^\"')]*")  # logos; one is time-stamped


def _stabilise_docs(docs: Path) -> None:
    """Data Docs with the same content byte for byte: renumber random UUIDs and
    point GE's remote logos (one time-stamped, a tracking pixel) at the local copy,
    so the docs also render offline."""
    logo = docs / "static/images/logo-long.png"
    for page in sorted(docs.rglob("*.html")):
        text = page.read_text()
        numbering: dict[str, str] = {}
        text = _UUID.sub(lambda m, seen=numbering: seen.setdefault(m.group(0), f"id{len(seen):04d}"), text)
        text = _REMOTE_LOGO.sub(os.path.relpath(logo, page.parent), text)
        text = _STAMP.sub(RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ"), text)
        page.write_text(text)


def expected_from_params(params: dict, plan_path: Path) -> Expected:
    v = params["validate"]
    return Expected(
        space=params["space"],
        archs=sorted(read_table(plan_path, "rerun the plan phase (snakemake phase_plan)")["arch_index"].to_list()),
        datasets=list(params["datasets"]), budgets=list(params["train"]["budgets"]),
        epochs=trained_epochs(params),
        seeds=list(params["train"]["seeds"]), chance_tolerance=float(v["chance_tolerance"]),
        isomorphic_tolerance=float(v["isomorphic_tolerance"]), seed_spread_max=float(v["seed_spread_max"]),
        seed_spread_median_max=float(v["seed_spread_median_max"]),
    )


__all__ = ["Expected", "ValidationFailed", "expected_from_params", "run_suites", "validate"]
