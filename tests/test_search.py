"""Multi-trial search on a one-seed fabricated release (so "the best arch" is unambiguous)."""

import copy
import json
import random

import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import fabricate, phases
from nasforge.analysis import analyse
from nasforge.api import Benchmark, QueryError
from nasforge.cli import app
from nasforge.release import build_release
from nasforge.search import ALGORITHMS, SimulatedBench, TimeModel, final_results, run_search
from nasforge.search.bohb import bohb

PARAMS = copy.deepcopy(phases.PARAMS)
PARAMS["train"]["seeds"] = [777]
PARAMS["plan"]["archs"] = 12


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    results = tmp_path_factory.mktemp("search") / "results"
    fabricate.shard_tables(results, PARAMS)
    phases.run_aggregate(results, PARAMS)
    phases.run_validate(results, PARAMS)
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    return Benchmark.open(phases.run_release(results, PARAMS))


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_each_algorithm_finds_the_best_arch_when_it_can_afford_the_whole_space(bench, algo):
    archs = bench.archs
    best_valid = archs["valid_acc_mean"].max()
    whole_space = 40 * sum(bench.cost(i, "mnist5k", "12")["train_seconds_total"] for i in bench.indices)
    trajectories = run_search(bench, algo, "mnist5k", "12", whole_space, runs=5)
    finals = final_results(trajectories).row(0, named=True)
    last = trajectories.group_by("run").agg(pl.all().sort_by("step").last())
    assert (last["best_valid_acc"] == best_valid).all(), last
    best_test = archs.filter(pl.col("valid_acc_mean") == best_valid)["test_acc_mean"]
    assert finals["runs"] == 5 and finals["test_acc_mean"] in best_test.to_list()


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_runs_are_reproducible_by_seed_and_respect_the_time_budget(bench, algo):
    budget = 3 * bench.cost(bench.indices[0], "mnist5k", "12")["train_seconds_total"]
    a = run_search(bench, algo, "mnist5k", "12", budget, runs=3, first_seed=10)
    b = run_search(bench, algo, "mnist5k", "12", budget, runs=3, first_seed=10)
    assert a.equals(b)
    for _, run in a.group_by("run"):
        times = run.sort("step")["simulated_seconds"].to_list()
        assert times == sorted(times) and (len(times) == 1 or times[-2] < budget)
        # BOHB's last trial may be pruned when the budget runs out: it charged time but left no row.
        assert (times[-1] >= budget or (algo == "local" and run["arch_index"].n_unique() == len(bench.indices))
                or algo == "bohb")
        best = run.sort("step")["best_valid_acc"].to_list()
        assert best == sorted(best)  # best-so-far never decreases
    c = run_search(bench, algo, "mnist5k", "12", budget * 20, runs=3, first_seed=11)
    assert not c.equals(b)


def test_neighbours_and_mutation_stay_on_held_archs(bench):
    env = SimulatedBench(bench, "mnist5k", "12", random.Random(0), 1e9)
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
        run_search(bench, "darts", "mnist5k", "12", 100, 1)
    with pytest.raises(QueryError, match="not in this release"):
        run_search(bench, "rea", "cifar100", "12", 100, 1)
    runner = CliRunner()
    out = tmp_path / "rea.parquet"
    result = runner.invoke(app, ["search", str(bench.root), "--algo", "rea", "--runs", "4", "--time-budget", "50",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rea on mnist5k hp12, 4 runs" in result.output
    assert pl.read_parquet(out)["run"].unique().sort().to_list() == [0, 1, 2, 3]
    result = runner.invoke(app, ["search", str(bench.root), "--algo", "bogus"])
    assert result.exit_code == 2 and "unknown algorithm" in result.output


def test_bohb_prunes_on_epochs_and_spends_its_whole_budget(bench):
    budget = 30 * bench.cost(bench.indices[0], "mnist5k", "12")["train_seconds_total"]
    env = SimulatedBench(bench, "mnist5k", "12", random.Random(3), budget)
    bohb(env)
    assert env.used >= budget and env.history
    # Hyperband stops some trials after one of the two epochs: more time was spent than full trials explain.
    per_trial = {i: 2 * sum(env.epoch_seconds(i)) for i in bench.indices}
    assert env.used > sum(per_trial[h["arch_index"]] for h in env.history) + 1e-9


def test_flops_time_model_charges_three_passes_per_training_image(bench):
    model = TimeModel("flops", gflops=50.0)
    index = bench.indices[2]
    flops = bench.cost(index, "mnist5k", "12")["flops"] * 1e6
    train, evaluation = model.epoch_seconds(bench, index, "mnist5k", "12")
    assert train == pytest.approx(3 * flops * 4000 / 50e9) and evaluation == pytest.approx(flops * 1000 / 50e9)
    env = SimulatedBench(bench, "mnist5k", "12", random.Random(0), 1e9, model)
    env.evaluate(index)
    assert env.used == pytest.approx(12 * train + evaluation)
    with pytest.raises(ValueError, match="unknown time model 'wall'"):
        TimeModel("wall")
    a = run_search(bench, "rea", "mnist5k", "12", 5.0, runs=2, time_model=model)
    assert a.equals(run_search(bench, "rea", "mnist5k", "12", 5.0, runs=2, time_model=model))
    assert not a.equals(run_search(bench, "rea", "mnist5k", "12", 5.0, runs=2, time_model=TimeModel("flops", 25.0)))


SEARCH = {**PARAMS["search"], "algorithms": ["random", "rea", "bohb", "naswot"]}


def _perfect_proxies(bench, results):
    """A proxies table whose naswot column is the arch's test accuracy: a perfect proxy."""
    from nasforge.schema import PROXIES, PROXY_SCHEMA
    from nasforge.tables import write_table

    archs = bench.archs.filter(pl.col("hp") == "12").sort("arch_index")
    rows = [{"space": "tss", "dataset": "mnist5k", "arch_index": r["arch_index"], "arch": r["arch"], "seed": 777,
             "batch_size": 8, **{p: float(k) for k, p in enumerate(PROXIES)}, "naswot": r["test_acc_mean"],
             "params": r["params"], "flops": r["flops"]} for r in archs.iter_rows(named=True)]
    return write_table(pl.DataFrame(rows, schema=PROXY_SCHEMA), results / "search/tss/proxies.parquet", ["arch_index"])


def test_search_phase_is_byte_stable_and_lands_in_the_release(bench):
    from nasforge.release import verify
    from nasforge.search.phase import run_search_suite

    results = bench.root.parents[1]
    proxies = _perfect_proxies(bench, results)
    params = {**PARAMS, "search": SEARCH}
    first = {p.name: p.read_bytes() for p in run_search_suite(params, results)}
    second = {p.name: p.read_bytes() for p in run_search_suite(params, results)}
    assert first == second and set(first) == {"trajectories.parquet", "summary.parquet", "summary.md",
                                              "search_trajectories.png"}
    trajectories = pl.read_parquet(results / "search/tss/trajectories.parquet")
    assert sorted(trajectories["algo"].unique()) == ["bohb", "naswot", "random", "rea"]
    for _, run in trajectories.filter(pl.col("algo") == "naswot").group_by("run"):
        scored = run.sort("step")
        assert scored["simulated_seconds"].to_list() == [0.0] * 4 and scored["arch_index"].n_unique() == 4
        assert scored["best_arch_index"][-1] == scored.sort("score", "arch_index", descending=[True, False])["arch_index"][0]
    summary = (results / "search/tss/summary.md").read_text()
    assert all(f"| {a} |" in summary for a in SEARCH["algorithms"]) and "+-" in summary

    metrics = json.loads(analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss", proxies)["metrics"].read_text())
    correlations = metrics["mnist5k/hp12"]["proxies"]
    assert correlations["naswot"]["spearman"] == 1.0 and correlations["naswot"]["kendall"] == 1.0
    assert correlations["synflow"] == {"archs": 12, "spearman": None, "kendall": None}  # a constant proxy

    release = build_release(params, results / "plan/tss.parquet", results / "aggregate/tss", results / "measured/aggregate/tss",
                            results / "validate/tss", results / "analysis/tss", results / "release2",
                            results / "search/tss")
    manifest = json.loads((release / "manifest.json").read_text())
    assert {"search/trajectories.parquet", "search/proxies.parquet", "figures/proxy_correlation.png"} <= set(manifest["files"])
    card = (release / "DATACARD.md").read_text()
    assert "## NAS algorithms on this benchmark" in card and "## Training-free proxies" in card
    assert "| naswot | 1.000 / 1.000 |" in card
    assert verify(release) == []

    measured = {**params, "search": {**SEARCH, "time_model": "measured"}}
    run_search_suite(measured, results)
    release = build_release(measured, results / "plan/tss.parquet", results / "aggregate/tss",
                            results / "measured/aggregate/tss", results / "validate/tss", results / "analysis/tss",
                            results / "release3", results / "search/tss")
    assert (release / "measured/search/trajectories.parquet").is_file() and (release / "search/proxies.parquet").is_file()
    assert not (release / "search/trajectories.parquet").exists() and verify(release) == []
    assert "`measured/search/`" in (release / "DATACARD.md").read_text()


def test_search_suite_errors_name_the_fix(bench, tmp_path):
    from nasforge.search.phase import run_search_suite
    from nasforge.search.suite import naswot_search

    with pytest.raises(FileNotFoundError, match="no proxies table"):
        run_search_suite({**PARAMS, "search": SEARCH}, tmp_path)
    results = bench.root.parents[1]
    _perfect_proxies(bench, results)
    with pytest.raises(ValueError, match="search.time_budget has no entry for mnist5k"):
        run_search_suite({**PARAMS, "search": {**SEARCH, "time_budget": {"cifar100": 1.0}}}, results)
    partial = pl.read_parquet(results / "search/tss/proxies.parquet").head(3)
    with pytest.raises(ValueError, match="no naswot score for 9 archs"):
        naswot_search(bench, partial, "mnist5k", "12", 4, 1)


def test_runs_share_one_search_problem_and_curves_match_the_epoch_table(bench):
    """What every run of a (dataset, budget) needs is built once; the in-memory curves BOHB reads
    are exactly the per-epoch table's rows."""
    from nasforge.search.simulation import SearchProblem

    a = SimulatedBench(bench, "mnist5k", "12", random.Random(0), 100.0)
    b = SimulatedBench(bench, "mnist5k", "12", random.Random(1), 100.0)
    assert a.problem is b.problem is SearchProblem.of(bench, "mnist5k", "12", TimeModel())
    curves = bench.curves("mnist5k", "12")
    assert len(curves) == len(bench.indices) * len(bench.seeds)
    for index in bench.indices[:4]:
        for seed in bench.seeds:
            assert curves[(index, seed)] == bench.epochs(index, "mnist5k", "12", seed)["valid_acc"].to_list()


def test_mutation_through_the_code_lookup_draws_as_the_general_case(tmp_path):
    """When the mutant is held, mutate answers from a lookup, yet consumes the generator exactly as
    the nearest-arch search would, so every trajectory stays what it was. The five archs here differ
    in their last edge only, so many mutants are held."""
    from nasforge.search.simulation import SearchProblem

    params = copy.deepcopy(phases.PARAMS)
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    family = [f"|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|{op}~2|" for op in ops]
    params["plan"] = {"archs": 5, "sample_seed": 0, "shards": 1, "include": family}
    results = tmp_path / "results"
    fabricate.shard_tables(results, params)
    phases.run_aggregate(results, params)
    dense = Benchmark.from_tables(results, "tss", results / "aggregate/tss", results / "measured/aggregate/tss/arch_times.parquet")
    env = SimulatedBench(dense, "mnist5k", "12", random.Random(5), 100.0)
    general = SimulatedBench(dense, "mnist5k", "12", random.Random(5), 100.0)
    general.problem = SearchProblem(dense, "mnist5k", "12", TimeModel())
    general.problem.by_code = {}  # forces the nearest-arch search
    held = 0
    for _ in range(60):
        for index in dense.indices:
            child = env.mutate(index)
            assert child == general.mutate(index)
            held += env.problem.by_code.get(env.codes[env.position[child]].tobytes()) is not None and \
                sum(env.codes[env.position[child]] != env.codes[env.position[index]]) == 1
    assert held > 20
    assert env.rng.random() == general.rng.random()
