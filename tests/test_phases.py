"""plan -> aggregate -> validate -> analyse -> release on fabricated shard tables (no training)."""

import copy
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from helpers import fabricate, phases
from helpers.archs import ALL_CONV, ALL_NONE
from helpers.phases import PARAMS, ROOT, SCHEMA
from nasforge.aggregate import CoverageError
from nasforge.analysis import analyse
from nasforge.config import ParamsError, check_params, load_params
from nasforge.plan import make_plan, sample_archs
from nasforge.release import verify
from nasforge.schema import SHARD_KEYS as KEYS
from nasforge.tables import read_metadata, write_table
from nasforge.validate import ValidationFailed


def test_committed_params_files_are_valid():
    for name in ("params.yaml", "params-nats.yaml"):
        load_params(ROOT / name, SCHEMA)
    check_params(PARAMS, SCHEMA)


@pytest.mark.parametrize("change,message", [
    (lambda p: p.update(space="nb101"), "space: 'nb101' is not allowed; allowed values are ['tss', 'sss']"),
    (lambda p: p["train"].update(sedes=[1]), "train: unknown key(s) ['sedes']; allowed keys are"),
    (lambda p: p["train"].update(seeds=["777"]), "train.seeds.0: '777' is not of type 'integer'"),
    (lambda p: p["plan"].update(archs="some"), "plan.archs: 'some' is not allowed; expected one of ['integer', 'all']"),
    (lambda p: p.update(datasets=["svhn"]), "datasets.0: 'svhn' is not allowed; allowed values are"),
    (lambda p: p.pop("validate"), "'validate' is a required property"),
    (lambda p: p["search"].update(algorithms=["darts"]), "search.algorithms.0: 'darts' is not allowed"),
    (lambda p: p["search"].update(time_model="wall"), "search.time_model: 'wall' is not allowed"),
])
def test_bad_params_name_the_key_and_what_is_allowed(change, message, tmp_path):
    params = copy.deepcopy(PARAMS)
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as err:
        load_params(path, SCHEMA)
    assert message in str(err.value) and str(path) in str(err.value)


def test_plan_is_fixed_includes_anchors_and_balances_shards():
    from nasforge.spaces import get_space

    plan = make_plan("tss", 40, 4, sample_seed=3, include=[ALL_CONV, ALL_NONE])
    assert plan.equals(make_plan("tss", 40, 4, sample_seed=3, include=[ALL_CONV, ALL_NONE]))
    tss = get_space("tss")
    assert {tss.index(ALL_CONV), tss.index(ALL_NONE)} <= set(plan["arch_index"])
    assert plan.height == 40 and plan["arch_index"].is_unique().all()
    loads = plan.group_by("shard").agg(pl.col("flops").sum())["flops"]
    assert loads.max() - loads.min() <= plan["flops"].max()  # greedy LPT bound
    assert sample_archs("sss", "all") == list(range(32768))
    with pytest.raises(ValueError, match="plan.include already names 2"):
        sample_archs("tss", 1, include=[ALL_CONV, ALL_NONE])
    with pytest.raises(ValueError, match="plan.shards"):
        make_plan("tss", 3, 4)


@pytest.fixture
def results(tmp_path):
    fabricate.shard_tables(tmp_path / "results", PARAMS)
    return tmp_path / "results"


def test_aggregate_tables(results):
    written = phases.run_aggregate(results)
    epochs, archs = pl.read_parquet(written["epochs"]), pl.read_parquet(written["archs"])
    assert epochs.height == 8 * 12 * 2 and archs.height == 8
    row = archs.row(0, named=True)
    assert row["seeds"] == [777, 888] and row["n_seeds"] == 2
    final = epochs.filter((pl.col("arch_index") == row["arch_index"]) & (pl.col("epoch") == 11)).sort("seed")
    assert row["test_acc_seeds"] == final["test_acc"].to_list()
    assert row["test_acc_mean"] == pytest.approx(final["test_acc"].mean())
    assert row["test_acc_std"] == pytest.approx(final["test_acc"].std())
    assert pl.read_parquet(written["times"]).height == epochs.height
    assert pl.read_parquet(written["latency"]).height == 8 * 2


def test_aggregate_names_missing_and_doubled_archs(results):
    shard = results / "train/tss/mnist5k/hp12/seed888/shard1.parquet"
    table = pl.read_parquet(shard)
    gone = table["arch_index"][0]
    write_table(table.filter(pl.col("arch_index") != gone), shard, KEYS, read_metadata(shard))  # a job that lost an arch
    with pytest.raises(CoverageError, match=rf"mnist5k hp12 seed888: missing archs \[{gone}\]"):
        phases.run_aggregate(results)
    write_table(pl.concat([table, table]), shard, KEYS, read_metadata(shard))
    with pytest.raises(CoverageError, match="more than once"):
        phases.run_aggregate(results)
    shard.unlink()
    with pytest.raises(CoverageError, match="shard1.parquet"):
        phases.run_aggregate(results)


def test_validation_passes_and_writes_stable_reports(results):
    phases.run_aggregate(results)
    summary = phases.run_validate(results)
    assert summary["success"] and summary["expectations"] >= 30
    report = json.loads((results / "validate/tss/validation.json").read_text())
    assert report["suites"]["chance"]["rows"] == 1 and report["suites"]["cost_model"]["rows"] == 8
    first = {p: p.read_bytes() for p in sorted((results / "validate/tss").rglob("*")) if p.is_file()}
    phases.run_validate(results)
    again = {p: p.read_bytes() for p in sorted((results / "validate/tss").rglob("*")) if p.is_file()}
    assert first == again
    index = (results / "validate/tss/docs/index.html").read_text()
    assert "great-expectations-web-assets" not in index


@pytest.mark.parametrize("corrupt,expectation", [
    (lambda t: t.with_columns(test_acc=pl.when(pl.col("epoch") == 0).then(150.0).otherwise(pl.col("test_acc"))),
     "expect_column_values_to_be_between"),
    (lambda t: t.with_columns(valid_loss=pl.lit(float("inf"))), "valid_loss"),
    (lambda t: t.with_columns(test_acc=pl.when(pl.col("arch").str.contains("nor_conv")).then(pl.col("test_acc"))
                              .otherwise(60.0)), "distance_from_chance"),
])
def test_a_corrupted_shard_fails_validation_and_blocks_the_release(results, corrupt, expectation):
    shard = results / "train/tss/mnist5k/hp12/seed777/shard0.parquet"
    write_table(corrupt(pl.read_parquet(shard)), shard, KEYS, read_metadata(shard))  # a trainer that wrote bad numbers
    shard = results / "train/tss/mnist5k/hp12/seed777/shard1.parquet"
    write_table(corrupt(pl.read_parquet(shard)), shard, KEYS, read_metadata(shard))  # a trainer that wrote bad numbers
    shard = results / "train/tss/mnist5k/hp12/seed777/shard2.parquet"
    write_table(corrupt(pl.read_parquet(shard)), shard, KEYS, read_metadata(shard))  # a trainer that wrote bad numbers
    phases.run_aggregate(results)
    with pytest.raises(ValidationFailed, match=expectation):
        phases.run_validate(results)
    assert not (results / "validate/tss/summary.json").exists()
    assert json.loads((results / "validate/tss/validation.json").read_text())["success"] is False
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    with pytest.raises(FileNotFoundError, match="no passing validation"):
        phases.run_release(results)
    assert not (results / "release").exists() or not list((results / "release").iterdir())


def test_figures_are_byte_stable(results, tmp_path):
    phases.run_aggregate(results)
    a = analyse(results / "aggregate/tss/archs.parquet", tmp_path / "a")
    b = analyse(results / "aggregate/tss/archs.parquet", tmp_path / "b")
    assert {k: p.read_bytes() for k, p in a.items()} == {k: p.read_bytes() for k, p in b.items()}
    assert len([p for p in a.values() if p.suffix == ".png"]) == 5
    metrics = json.loads(a["metrics"].read_text())["mnist5k/hp12"]
    assert metrics["archs"] == 8 and metrics["best"]["test_acc_mean"] == metrics["test_acc"]["max"]


def test_release_verifies_and_detects_any_change(results):
    phases.run_aggregate(results)
    phases.run_validate(results)
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    release = phases.run_release(results)
    assert release.name == "nasforge-tss-v0.0.1"
    assert verify(release) == []
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["files"]["tables/archs.parquet"]["rows"] == 8
    assert "measured/times.parquet" not in manifest["files"]
    assert "measured/times.parquet" not in manifest["files"] and (release / "measured/manifest.json").is_file()
    card = (release / "DATACARD.md").read_text()
    assert "# nasforge-tss-v0.0.1" in card and "measured/" in card and "mnist5k" in card

    archs = release / "tables/archs.parquet"
    data = bytearray(archs.read_bytes())
    data[len(data) // 2] ^= 1
    archs.write_bytes(bytes(data))
    assert any("tables/archs.parquet: sha256 differs" in p for p in verify(release))
    rebuilt = phases.run_release(results)
    assert verify(rebuilt) == []
    (rebuilt / "measured/times.parquet").write_bytes(b"changed")
    assert any("measured/times.parquet: sha256 differs" in p for p in verify(rebuilt))
    phases.run_release(results)
    (rebuilt / "extra.txt").write_text("smuggled in")
    assert any("extra.txt: not listed" in p for p in verify(rebuilt))
    shutil.rmtree(rebuilt / "figures")
    assert any("listed in manifest.json but missing" in p for p in verify(rebuilt))


@pytest.mark.slow
def test_workflow_is_lint_clean():
    import os
    import subprocess
    import sys

    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr, result.stdout


def test_shards_of_another_protocol_are_refused_and_the_release_states_the_recorded_one(results):
    written = phases.run_aggregate(results)
    recorded = json.loads(written["protocols"].read_text())
    assert list(recorded) == ["12"] and recorded["12"]["epochs"] == 12
    assert recorded["12"]["protocol"]["batch_size"] == 256 and recorded["12"]["protocol"]["lr"] == 0.1

    shard = results / "train/tss/mnist5k/hp12/seed888/shard2.parquet"
    meta = read_metadata(shard)
    meta["job"]["protocol"]["batch_size"] = 128  # a job run by hand with another batch
    write_table(pl.read_parquet(shard), shard, KEYS, meta)
    with pytest.raises(CoverageError, match=r"seed888/shard2.parquet: trained hp 12 with .*'batch_size': 128"):
        phases.run_aggregate(results)

    other = copy.deepcopy(PARAMS)
    other["train"]["protocol"] = {"batch_size": 128}  # ...which a configuration saying so accepts, for that shard
    with pytest.raises(CoverageError, match="seed777/shard0.parquet") as caught:
        phases.run_aggregate(results, other)
    assert "seed888/shard2" not in str(caught.value)

    write_table(pl.read_parquet(shard), shard, KEYS, {"environment": meta["environment"]})  # no job recorded
    with pytest.raises(CoverageError, match=r"seed888/shard2.parquet: records no training job"):
        phases.run_aggregate(results)


def test_release_carries_the_protocols_and_the_card_states_them(results):
    phases.run_aggregate(results)
    phases.run_validate(results)
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    release = phases.run_release(results)
    assert json.loads((release / "tables/protocols.json").read_text())["12"]["protocol"]["weight_decay"] == 5e-4
    card = (release / "DATACARD.md").read_text()
    assert "as every shard recorded it (`tables/protocols.json`)" in card
    assert "  - hp12: SGD, momentum 0.9 Nesterov, lr 0.1" in card and "batch 256." in card
    assert verify(release) == []


def test_loading_fills_the_schemas_defaults_once(tmp_path):
    params = copy.deepcopy({k: v for k, v in PARAMS.items()})
    for section, key in (("train", "threads"), ("train", "engine"), ("train", "protocol"), ("plan", "sample_seed"),
                         ("search", "gflops"), ("search", "max_evaluations")):
        params[section].pop(key, None)
    params.pop("sources", None)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    loaded = load_params(path, SCHEMA)
    assert loaded["train"]["threads"] == 1 and loaded["train"]["engine"] == "reference"
    assert loaded["train"]["protocol"] == {} and loaded["plan"]["sample_seed"] == 0 and loaded["sources"] == {}
    assert loaded["search"]["gflops"] == 100.0 and loaded["search"]["max_evaluations"] == 10000
    params["train"]["threads"] = 2  # a value given is kept
    path.write_text(yaml.safe_dump(params))
    assert load_params(path, SCHEMA)["train"]["threads"] == 2


def _search_rows(algorithm: str, seed: int, archs: list[str | None]) -> pl.DataFrame:
    """A search job's per-epoch table (one epoch per derived arch; None for a diverged epoch)."""
    from nasforge.oneshot.search import SEARCH_SCHEMA
    from nasforge.spaces import get_space

    rows = [dict.fromkeys(SEARCH_SCHEMA) | {
        "space": "tss", "algorithm": algorithm, "selection": "argmax", "dataset": "mnist5k", "seed": seed,
        "epoch": epoch, "arch": arch, "arch_index": get_space("tss").index(arch) if arch else None,
        "diverged": arch is None} for epoch, arch in enumerate(archs)]
    return pl.DataFrame(rows, schema=SEARCH_SCHEMA)


def _score(results: Path, params: dict) -> dict[str, Path]:
    from nasforge.oneshot.phase import run_oneshot_score
    from nasforge.paths import Results

    phases.run_aggregate(results, params)
    return run_oneshot_score(params, Results(str(results)))


def test_oneshot_scores_derived_archs_by_the_benchmark_and_reports_collapse_and_divergence(results, mnist5k_prepared):
    from nasforge.oneshot.search import SEARCH_KEYS, SEARCH_TIMING_SCHEMA
    from nasforge.paths import Results

    params = copy.deepcopy(PARAMS)
    params["oneshot"].update(algorithms=["darts-v1", "gdas"], seeds=[777, 888])
    r = Results(str(results))
    (results / "data").mkdir()
    (results / "data/mnist5k").symlink_to(mnist5k_prepared)
    runs = {("darts-v1", 777): [ALL_CONV, ALL_NONE], ("darts-v1", 888): [ALL_NONE, ALL_NONE],
            ("gdas", 777): [ALL_NONE, ALL_CONV], ("gdas", 888): [ALL_CONV, None]}
    for (algorithm, seed), archs in runs.items():
        table = _search_rows(algorithm, seed, archs)
        write_table(table, r.oneshot_run(algorithm, "mnist5k", seed), SEARCH_KEYS)
        timing = table.select([c for c in SEARCH_TIMING_SCHEMA if c in table.columns]).with_columns(
            search_seconds=pl.lit(1.0), eval_seconds=pl.lit(0.1))
        write_table(timing, r.oneshot_run(algorithm, "mnist5k", seed, measured=True), SEARCH_KEYS)
    written = _score(results, params)

    archs = pl.read_parquet(results / "aggregate/tss/archs.parquet")
    truth = dict(zip(archs["arch"], archs["test_acc_mean"], strict=True))  # the benchmark's own final accuracy
    table = pl.read_parquet(written["results"])
    assert table.height == 8 and pl.read_parquet(written["added_epochs"]).height == 0  # nothing to train
    scored = table.filter(~pl.col("diverged"))
    assert scored["source"].unique().to_list() == ["benchmark"]
    for arch, acc in scored.select("arch", "found_test_acc").iter_rows():
        assert acc == pytest.approx(truth[arch])
    assert scored.filter(pl.col("arch") == ALL_NONE)["param_free_edges"].unique().to_list() == [6]
    assert table.filter(pl.col("diverged"))["found_test_acc"].to_list() == [None]

    summary = {row["algorithm"]: row for row in pl.read_parquet(written["summary"]).iter_rows(named=True)}
    assert summary["darts-v1"]["test_acc_mean"] == pytest.approx(truth[ALL_NONE])  # both seeds' last epoch
    assert summary["darts-v1"]["param_free_edges_mean"] == 6 and summary["darts-v1"]["diverged_runs"] == 0
    assert (summary["gdas"]["runs"], summary["gdas"]["diverged_runs"]) == (2, 1)
    assert summary["gdas"]["test_acc_mean"] == pytest.approx(truth[ALL_CONV])  # the run that did not diverge
    markdown = written["markdown"].read_text()
    assert "darts-v1 on mnist5k: collapsed onto parameter-free ops (6.0 of 6 edges" in markdown
    assert "gdas on mnist5k: 1 of 2 searches diverged" in markdown
    assert "gdas on mnist5k: collapsed" not in markdown


def test_oneshot_phase_without_searches_writes_empty_tables(results):
    assert PARAMS["oneshot"]["algorithms"] == []  # the schema's default
    written = _score(results, PARAMS)
    for name in ("results", "added_epochs", "summary", "seconds"):
        assert pl.read_parquet(written[name]).height == 0, name
    assert "No weight-sharing search was configured" in written["markdown"].read_text()
    assert written["figure"].stat().st_size > 0
