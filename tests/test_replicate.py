"""Auditing a release by re-training: a genuine release reproduces, an altered one is flagged."""

import copy
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import phases
from helpers.archs import ALL_CONV, ALL_NONE
from nasforge.analysis import analyse
from nasforge.cli import app
from nasforge.config import check_params
from nasforge.errors import InputError, MissingInputError
from nasforge.paths import Results
from nasforge.plan import make_plan
from nasforge.protocol import Protocol
from nasforge.replicate import audit_release, stratified_sample
from nasforge.schema import PLAN_KEYS
from nasforge.tables import read_metadata, write_table
from nasforge.train.shard import ShardJob, run_shard

runner = CliRunner()
PARAMS = copy.deepcopy(phases.PARAMS)
PARAMS["plan"] = {"archs": 6, "sample_seed": 3, "shards": 2, "include": [ALL_CONV, ALL_NONE]}
PARAMS["train"] = {"budgets": ["01"], "seeds": [777, 888], "protocol": {"batch_size": 64}}
PARAMS["validate"] = {"chance_tolerance": 100.0, "isomorphic_tolerance": 100.0, "seed_spread_max": 100.0,
                      "seed_spread_median_max": 100.0}
check_params(PARAMS, phases.SCHEMA)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_tiny):
    """A release of 6 archs really trained (1 epoch, 2 seeds) on a 160-image slice of mnist5k."""
    results = tmp_path_factory.mktemp("replicate") / "results"
    r, plan = Results(str(results)), PARAMS["plan"]
    write_table(make_plan("tss", plan["archs"], plan["shards"], plan["sample_seed"], plan["include"]),
                r.plan("tss"), PLAN_KEYS)
    data = mnist_tiny / "mnist5k"
    for seed in PARAMS["train"]["seeds"]:
        for k in range(plan["shards"]):
            run_shard(ShardJob.under(r, space="tss", dataset="mnist5k", hp="01", seed=seed, shard=k,
                                     of=plan["shards"], plan=Path(r.plan("tss")), data=data, threads=1,
                                     protocol=Protocol.nats("01").with_overrides(PARAMS["train"]["protocol"]),
                                     latency_repeats=0))
    phases.run_aggregate(results, PARAMS)
    phases.run_validate(results, PARAMS)
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    return phases.run_release(results, PARAMS), data


def test_a_genuine_release_reproduces_byte_for_byte(trained, tmp_path):
    release, data = trained
    summary = audit_release(release, 2, tmp_path / "audit", seed=1, data=data)
    assert summary["expect_identical"], summary["why"]
    assert summary["verdict"] == "reproduced" and summary["passed"]
    table = pl.read_parquet(tmp_path / "audit/audit.parquet")
    assert table.height == 4 and set(table["verdict"]) == {"identical"} and table["epochs_differing"].sum() == 0
    retrained = pl.read_parquet(tmp_path / "audit/retrained.parquet")
    original = pl.read_parquet(release / "tables/epochs.parquet").join(
        retrained.select("arch_index", "seed"), on=["arch_index", "seed"], how="semi").sort(retrained.columns[:7])
    assert retrained.select(original.columns).sort(original.columns[:7]).equals(original.sort(original.columns[:7]))
    for name in ("audit.png", "report.md", "audit.json"):
        assert (tmp_path / "audit" / name).stat().st_size > 0
    # The audit's own outputs are byte-stable: a second audit writes the same bytes.
    audit_release(release, 2, tmp_path / "again", seed=1, data=data)
    for name in ("audit.parquet", "retrained.parquet", "audit.png", "report.md", "audit.json"):
        assert (tmp_path / "audit" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def _alter(release: Path, dest: Path, arch: int, seed: int, shift: float) -> Path:
    """A forger's release: one arch's test accuracy moved at every epoch, tables and manifest made consistent."""
    from test_hostile import rehash

    shutil.copytree(release, dest)
    metadata = read_metadata(dest / "tables/epochs.parquet")
    epochs = pl.read_parquet(dest / "tables/epochs.parquet")
    hit = (pl.col("arch_index") == arch) & (pl.col("seed") == seed)
    epochs = epochs.with_columns(pl.when(hit).then(pl.col("test_acc") + shift).otherwise(pl.col("test_acc"))
                                 .alias("test_acc"))
    write_table(epochs, dest / "tables/epochs.parquet", ["dataset", "hp", "arch_index", "seed", "epoch"],
                metadata)
    (dest / "tables/epochs.parquet.sha256").unlink(missing_ok=True)
    rehash(dest, "tables/epochs.parquet")
    return dest


def _seed_sampling(archs: pl.DataFrame, target: int, n: int) -> int:
    """A sample seed whose ``n`` archs include ``target`` (the audit re-trains a sample, not every arch)."""
    return next(s for s in range(1000) if target in stratified_sample(archs, n, seed=s)["arch_index"].to_list())


def test_an_altered_release_is_flagged_on_the_altered_arch(trained, tmp_path):
    release, data = trained
    archs = pl.read_parquet(release / "tables/archs.parquet")
    target = int(archs.filter(pl.col("test_acc_mean") < 60)["arch_index"][0])  # room to move it up
    altered = _alter(release, tmp_path / "altered", target, 888, 30.0)
    seed = _seed_sampling(archs, target, 2)
    out = tmp_path / "audit"
    result = runner.invoke(app, ["audit", str(altered), "--sample", "2", "--seed", str(seed), "--data", str(data),
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "failed" in result.output
    table = pl.read_parquet(out / "audit.parquet")
    flagged = table.filter(pl.col("verdict") != "identical")
    assert flagged.select("arch_index", "seed").rows() == [(target, 888)]
    assert flagged["verdict"][0] == "outside_noise" and flagged["max_final_difference"][0] == pytest.approx(30.0)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["verdict"] == "failed" and not summary["passed"]
    assert "FAILED" in (out / "report.md").read_text()


def test_small_drift_on_the_same_software_is_not_reproduction(trained, tmp_path):
    """A shift far inside seed noise still fails where the software promises the same bytes."""
    release, data = trained
    archs = pl.read_parquet(release / "tables/archs.parquet")
    target = int(archs["arch_index"][0])
    altered = _alter(release, tmp_path / "drift", target, 777, 1e-9)
    summary = audit_release(altered, 1, tmp_path / "audit", data=data, seed=_seed_sampling(archs, target, 1))
    assert summary["verdict"] == "not_reproduced" and not summary["passed"]
    assert summary["counts"]["not_identical"] == 1


def test_stratified_sample_spans_accuracy_and_cost_and_depends_on_its_seed():
    n = 40
    archs = pl.DataFrame({"arch_index": list(range(n)), "test_acc_mean": [float(i % 20) for i in range(n)],
                          "flops": [float((i * 7) % n) for i in range(n)]})
    picked = stratified_sample(archs, 8, seed=0)
    assert picked.height == 8 and picked["arch_index"].n_unique() == 8
    assert set(zip(picked["accuracy_stratum"], picked["cost_stratum"], strict=True)) == {
        (a, c) for a in range(4) for c in range(2)}  # one of each of the 8 strata
    assert picked.equals(stratified_sample(archs, 8, seed=0))
    assert stratified_sample(archs, 8, seed=1)["arch_index"].to_list() != picked["arch_index"].to_list()
    with pytest.raises(InputError, match="at most 40"):
        stratified_sample(archs, 41, seed=0)


def test_audit_refuses_a_setting_the_release_lacks_and_the_wrong_data(trained, tmp_path):
    release, data = trained
    with pytest.raises(InputError, match="no 'cifar10'"):
        audit_release(release, 1, tmp_path / "a", dataset="cifar10")
    other = tmp_path / "other"
    shutil.copytree(data, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "dataset": "cifar10"}))
    with pytest.raises(InputError, match="holds 'cifar10', the release trained on 'mnist5k'"):
        audit_release(release, 1, tmp_path / "b", data=other)
    with pytest.raises(MissingInputError, match="no prepared dataset"):
        audit_release(release, 1, tmp_path / "c", data=tmp_path / "nowhere")
    assert not (tmp_path / "b" / "audit.json").exists()  # refused before anything trained or was written
