"""The query API and the NATS-Bench facade, on a release built from fabricated shards."""

import json
import random

import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import fabricate, phases
from nasforge.analysis import analyse
from nasforge.api import Benchmark, QueryError, create
from nasforge.cli import app
from nasforge.tables import write_table
from nasforge.validate import expected_from_params, validate


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    results = tmp_path_factory.mktemp("api") / "results"
    fabricate.shard_tables(results, phases.PARAMS)
    phases.run_aggregate(results)
    validate(results / "aggregate/tss/epochs.parquet", results / "aggregate/tss/archs.parquet",
             expected_from_params(phases.PARAMS, results / "plan/tss.parquet"), results / "validate/tss")
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    return phases.run_release(results)


@pytest.fixture
def tables(release):
    return (pl.read_parquet(release / "tables/archs.parquet"), pl.read_parquet(release / "tables/epochs.parquet"),
            pl.read_parquet(release / "measured/times.parquet"))


def test_facade_answers_with_the_tables_numbers(release, tables):
    archs, epochs, times = tables
    api = create(release, "tss", fast_mode=True, verbose=False)
    # As NATS-Bench: the whole space is indexed; the release holds (has evaluated) a sample of it.
    assert len(api) == 15625 and api.meta_archs[:3] == [api.arch(i) for i in range(3)]
    assert api.evaluated_indexes == set(archs["arch_index"].unique())
    index = archs["arch_index"][3]
    arch = api.arch(index)
    assert api.query_index_by_arch(arch) == index and api.query_index_by_arch("|bad|") == -1

    row = archs.filter(pl.col("arch_index") == index).row(0, named=True)
    mean = api.get_more_info(index, "mnist5k", hp="12", is_random=False)
    assert set(mean) == {f"{s}-{k}" for s in ("train", "valid", "test") for k in ("loss", "accuracy", "per-time", "all-time")}
    assert mean["test-accuracy"] == pytest.approx(row["test_acc_mean"])
    assert mean["valid-loss"] == pytest.approx(row["valid_loss_mean"])

    one = api.get_more_info(arch, "mnist5k", iepoch=0, hp="12", is_random=888)
    first = epochs.filter((pl.col("arch_index") == index) & (pl.col("seed") == 888) & (pl.col("epoch") == 0))
    assert one["train-accuracy"] == first["train_acc"].item()
    t = times.filter((pl.col("arch_index") == index) & (pl.col("seed").is_in([777, 888])))
    per_seed = t.group_by("seed").agg(pl.col("train_seconds").sum())["train_seconds"]
    assert mean["train-all-time"] == pytest.approx(per_seed.mean())  # NATS-Bench: the mean over trials
    first_time = times.filter((pl.col("arch_index") == index) & (pl.col("seed") == 888) & (pl.col("epoch") == 0))
    assert one["train-all-time"] == first_time["train_seconds"].item() == one["train-per-time"]

    cost = api.get_cost_info(index, "mnist5k", hp="12")
    assert set(cost) == {"flops", "params", "latency", "T-train@epoch", "T-train@total", "T-x-valid@epoch",
                         "T-x-valid@total", "T-ori-test@epoch", "T-ori-test@total"}
    assert cost["flops"] == row["flops"] and cost["params"] == row["params"]
    assert 0.009 <= cost["latency"] <= 0.010  # the batch-256 latency, in seconds, as NATS-Bench documents

    best_index, best_acc = api.find_best("mnist5k", "test", hp="12")  # mnist5k has no x-test: its test set is whole
    top = archs.sort("test_acc_mean", descending=True).row(0, named=True)
    assert (best_index, best_acc) == (top["arch_index"], top["test_acc_mean"])
    small = api.find_best("mnist5k", "x-valid", FLOP_max=50, hp="12")
    assert archs.filter(pl.col("arch_index") == small[0])["flops"].item() <= 50
    assert api.statistics("mnist5k", "12") == {2: 8}  # NATS-Bench's: {trials: archs with that many}
    config = api.get_net_config(index, "mnist5k")
    assert config == {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": arch, "num_classes": 10}


def test_simulated_time_accumulates_and_resets(release):
    api = create(release, "topology")
    random.seed(0)
    held = [api.meta_archs[i] for i in sorted(api.evaluated_indexes)]
    acc, latency, cost, total = api.simulate_train_eval(held[0], "mnist5k", hp="12")
    assert 0 <= acc <= 100 and latency > 0 and cost > 0 and total == cost == api.used_time
    _, _, cost2, total2 = api.simulate_train_eval(held[1], "mnist5k", hp="12")
    assert total2 == pytest.approx(cost + cost2) == pytest.approx(api.used_time)
    api.simulate_train_eval(held[2], "mnist5k", hp="12", account_time=False)
    assert api.used_time == pytest.approx(total2)
    api.reset_time()
    assert api.used_time == 0


def test_bad_queries_are_clear_errors(release):
    api = create(release, "tss")
    missing = next(i for i in range(15625) if i not in api._bench.indices)
    held = min(api.evaluated_indexes)
    with pytest.raises(QueryError, match="not in this release"):
        api.get_more_info(missing, "mnist5k", hp="12")
    with pytest.raises(ValueError, match="invalid index"):
        api.arch(99999)
    with pytest.raises(ValueError, match="Invalid architecture index"):
        api.get_more_info(99999, "mnist5k", hp="12")
    with pytest.raises(QueryError, match=r"dataset 'cifar10' is not trained for this arch and budget; it has \['mnist5k'\]"):
        api.get_more_info(held, "cifar10", hp="12")
    with pytest.raises(QueryError, match=r"only has hyper-parameters of \['12'\] instead of 200"):
        api.get_more_info(held, "mnist5k", hp="200")
    with pytest.raises(ValueError, match=r"can not find random seed \(999\)"):
        api.get_more_info(held, "mnist5k", hp="12", is_random=999)
    with pytest.raises(ValueError, match="invalid iepoch=12"):
        api.get_more_info(held, "mnist5k", iepoch=12, hp="12")
    assert api.get_net_param(held, "mnist5k", None) == {777: None, 888: None}  # no weights, as NATS's simple files
    with pytest.raises(ValueError, match="is a tss release, not sss"):
        create(release, "sss")
    with pytest.raises(FileNotFoundError, match="not a nasforge release"):
        create(release / "tables", "tss")


def test_nats_bench_sample_runs_unchanged(release, capsys):
    """Written from NATS-Bench's README and its random-search example, only `create`'s import changed."""
    from nasforge.api import create as create_api  # was: from nats_bench import create

    api = create_api(str(release), "tss", fast_mode=True, verbose=True)
    index = api.query_index_by_arch(api.meta_archs[sorted(api.evaluated_indexes)[5]])
    info = api.get_more_info(index, "mnist5k", hp="12")
    assert "test-accuracy" in info
    info = api.get_cost_info(index, "mnist5k", hp="12")
    assert "flops" in info
    api.clear_params(index)
    api.reload(index=index)
    config = api.get_net_config(index, "mnist5k")
    from nasforge.models.networks import build_network  # stands in for xautodl's get_cell_based_tiny_net(config)

    network = build_network("tss", config["arch_str"], config["num_classes"], in_channels=1)
    assert sum(p.numel() for p in network.parameters()) / 1e6 == pytest.approx(info["params"])
    api.show(index)
    assert api.meta_archs[index] in capsys.readouterr().out

    def random_search(api, dataset, time_budget, hp):
        api.reset_time()
        best_arch, best_acc, total_time_cost, history = None, -1, [], []
        while len(total_time_cost) == 0 or total_time_cost[-1] < time_budget:
            arch = api.meta_archs[random.choice(sorted(api.evaluated_indexes))]  # a sample release: its archs
            accuracy, _, _, total_cost = api.simulate_train_eval(arch, dataset=dataset, hp=hp)
            total_time_cost.append(total_cost)
            history.append(arch)
            if best_arch is None or best_acc < accuracy:
                best_acc, best_arch = accuracy, arch
        return best_arch, total_time_cost[-1], len(history)

    random.seed(1)
    first = random_search(api, "mnist5k", 200, "12")
    random.seed(1)
    assert random_search(api, "mnist5k", 200, "12") == first
    assert first[1] >= 200 and api.query_index_by_arch(first[0]) >= 0


def test_native_api_queries(release, tables):
    archs, epochs, _ = tables
    bench = Benchmark.open(release)
    index = archs["arch_index"][0]
    per_epoch = bench.epochs(index, "mnist5k", "12")
    rows = epochs.filter(pl.col("arch_index") == index)
    assert per_epoch["epoch"].to_list() == list(range(12))
    assert per_epoch["test_acc"][11] == pytest.approx(rows.filter(pl.col("epoch") == 11)["test_acc"].mean())
    assert bench.final(index, "mnist5k", 12, seed=777)["test_acc"] == rows.filter(
        (pl.col("epoch") == 11) & (pl.col("seed") == 777))["test_acc"].item()
    assert bench.cost(index, "mnist5k", "12")["train_seconds_total"] > 0


def test_query_cli(release):
    runner = CliRunner()
    bench = Benchmark.open(release)
    index = bench.indices[0]
    result = runner.invoke(app, ["query", str(release), str(index), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["index"] == index and info["results"][0]["test_acc"] == pytest.approx(bench.final(index, "mnist5k", "12")["test_acc"])
    result = runner.invoke(app, ["query", str(release), str(index), "--seed", "888"])
    assert result.exit_code == 0 and "seed 888" in result.output
    result = runner.invoke(app, ["query", str(release), str(index), "--dataset", "cifar100"])
    assert result.exit_code == 2 and "not in this release" in result.output


def test_a_release_from_before_0_2_0_is_refused_with_the_fix(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    write_table(pl.DataFrame({"dataset": ["mnist5k"], "hp": ["01"], "arch_index": [0], "test_acc_mean": [50.0]}),
                tables / "archs.parquet", ["arch_index"])
    with pytest.raises(QueryError, match=r"valtest_loss_mean.*before 0\.2\.0.*nasforge pipeline"):
        Benchmark.from_tables(tmp_path, "tss", tables, tmp_path / "times.parquet")
