"""Multi-trial search on a one-seed fabricated release (so "the best arch" is unambiguous)."""

import copy
import random

import polars as pl
import pytest
from typer.testing import CliRunner

import fabricate
import test_phases as phases
from nasforge.analysis import analyse
from nasforge.api import Benchmark, QueryError
from nasforge.cli import app
from nasforge.release import build_release
from nasforge.search import ALGORITHMS, SimulatedBench, final_results, run_search
from nasforge.validate import expected_from_params, validate

PARAMS = copy.deepcopy(phases.PARAMS)
PARAMS["train"]["seeds"] = [777]
PARAMS["plan"]["archs"] = 12


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    results = tmp_path_factory.mktemp("search") / "results"
    fabricate.shard_tables(results, PARAMS)
    from nasforge.aggregate import Layout, aggregate

    aggregate(Layout.from_params(PARAMS, results), results / "plan/tss.parquet", results / "bench/tss", results / "measured/bench/tss")
    validate(results / "bench/tss/epochs.parquet", results / "bench/tss/archs.parquet",
             expected_from_params(PARAMS, results / "plan/tss.parquet"), results / "validate/tss")
    analyse(results / "bench/tss/archs.parquet", results / "figures/tss")
    release = build_release(PARAMS, results / "plan/tss.parquet", results / "bench/tss", results / "measured/bench/tss",
                            results / "validate/tss", results / "figures/tss", results / "release")
    return Benchmark.open(release)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_each_algorithm_finds_the_best_arch_when_it_can_afford_the_whole_space(bench, algo):
    archs = bench.archs
    best_valid = archs["valid_acc_mean"].max()
    whole_space = 40 * sum(bench.cost(i, "mnist5k", "02")["train_seconds_total"] for i in bench.indices)
    trajectories = run_search(bench, algo, "mnist5k", "02", whole_space, runs=5)
    finals = final_results(trajectories).row(0, named=True)
    last = trajectories.group_by("run").agg(pl.all().sort_by("step").last())
    assert (last["best_valid_acc"] == best_valid).all(), last
    best_test = archs.filter(pl.col("valid_acc_mean") == best_valid)["test_acc_mean"]
    assert finals["runs"] == 5 and finals["test_acc_mean"] in best_test.to_list()


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_runs_are_reproducible_by_seed_and_respect_the_time_budget(bench, algo):
    budget = 3 * bench.cost(bench.indices[0], "mnist5k", "02")["train_seconds_total"]
    a = run_search(bench, algo, "mnist5k", "02", budget, runs=3, first_seed=10)
    b = run_search(bench, algo, "mnist5k", "02", budget, runs=3, first_seed=10)
    assert a.equals(b)
    for _, run in a.group_by("run"):
        times = run.sort("step")["simulated_seconds"].to_list()
        assert times == sorted(times) and (len(times) == 1 or times[-2] < budget)
        assert times[-1] >= budget or (algo == "local" and run["arch_index"].n_unique() == len(bench.indices))
        best = run.sort("step")["best_valid_acc"].to_list()
        assert best == sorted(best)  # best-so-far never decreases
    c = run_search(bench, algo, "mnist5k", "02", budget * 20, runs=3, first_seed=11)
    assert not c.equals(b)


def test_neighbours_and_mutation_stay_on_held_archs(bench):
    env = SimulatedBench(bench, "mnist5k", "02", random.Random(0), 1e9)
    for index in bench.indices:
        neighbours = env.neighbours(index)
        assert neighbours and index not in neighbours
        here = env.codes[env.position[index]]
        distances = {int((env.codes[env.position[n]] != here).sum()) for n in neighbours}
        nearest = min(int((env.codes[k] != here).sum()) for k in range(len(env.indices)) if env.indices[k] != index)
        assert distances == {nearest}
    assert env.project(tuple(env.codes[3])) == bench.indices[3]
    for index in bench.indices:
        for _ in range(20):
            child = env.mutate(index)
            assert child != index and child in bench.indices


def test_search_errors_and_cli(bench, tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm"):
        run_search(bench, "darts", "mnist5k", "02", 100, 1)
    with pytest.raises(QueryError, match="not in this release"):
        run_search(bench, "rea", "cifar100", "02", 100, 1)
    runner = CliRunner()
    out = tmp_path / "rea.parquet"
    result = runner.invoke(app, ["search", str(bench.root), "--algo", "rea", "--runs", "4", "--time-budget", "50",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rea on mnist5k hp02, 4 runs" in result.output
    assert pl.read_parquet(out)["run"].unique().sort().to_list() == [0, 1, 2, 3]
    result = runner.invoke(app, ["search", str(bench.root), "--algo", "bogus"])
    assert result.exit_code == 2 and "unknown algorithm" in result.output
