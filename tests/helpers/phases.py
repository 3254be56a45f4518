"""The post-training phases run on fabricated shard tables (no training): aggregate, validate,
release, each into the layout ``nasforge.paths`` gives a results folder."""

from pathlib import Path

from helpers.archs import ALL_CONV, ALL_NONE
from nasforge.aggregate import ShardSet, aggregate
from nasforge.analysis import analyse
from nasforge.config import check_params
from nasforge.paths import Results
from nasforge.release import build_release
from nasforge.validate import expected_from_params, validate

ROOT = Path(__file__).resolve().parents[2]  # the repository
SCHEMA = ROOT / "workflow/schemas/params.schema.yaml"
PARAMS = {
    "release": {"name": "nasforge", "version": "0.0.1"},
    "space": "tss",
    "datasets": ["mnist5k"],
    "plan": {"archs": 8, "sample_seed": 1, "shards": 3, "include": [ALL_CONV, ALL_NONE]},
    "train": {"budgets": ["12"], "seeds": [777, 888]},
    "validate": {"chance_tolerance": 2.0, "isomorphic_tolerance": 5.0, "seed_spread_max": 5.0,
                 "seed_spread_median_max": 2.0},
    "search": {"algorithms": ["random", "rea", "reinforce", "bohb", "local", "naswot"], "runs": 3,
               "time_model": "flops", "gflops": 100.0, "time_budget": {"mnist5k": 60.0}, "naswot_samples": 4,
               "proxies": {"batch_size": 8}},
}
check_params(PARAMS, SCHEMA)  # fills the schema's defaults, as every command's configuration is filled


def paths(results: Path) -> Results:
    return Results(str(results))


def run_aggregate(results: Path, params: dict = PARAMS) -> dict[str, Path]:
    r = paths(results)
    return aggregate(ShardSet.from_params(params, r), Path(r.plan("tss")), Path(r.aggregate("tss")),
                     Path(r.measured_aggregate("tss")))


def run_validate(results: Path, params: dict = PARAMS) -> dict:
    r = paths(results)
    return validate(Path(r.aggregate_table("tss", "epochs")), Path(r.aggregate_table("tss", "archs")),
                    expected_from_params(params, Path(r.plan("tss"))), Path(r.validate("tss")))


def run_release(results: Path, params: dict = PARAMS) -> Path:
    r = paths(results)
    return build_release(params, Path(r.plan("tss")), Path(r.aggregate("tss")), Path(r.measured_aggregate("tss")),
                         Path(r.validate("tss")), Path(r.analysis("tss")), Path(r.releases()))


def fabricated_release(results: Path, params: dict = PARAMS) -> Path:
    """A release built through every post-training phase from fabricated shard tables (no training)."""
    from helpers import fabricate

    fabricate.shard_tables(results, params)
    run_aggregate(results, params)
    run_validate(results, params)
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    return run_release(results, params)
