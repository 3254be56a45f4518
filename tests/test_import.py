"""Importing NATS-Bench's and NAS-Bench-201's published layouts, with nats_bench 1.8 as the oracle."""

from __future__ import annotations

import json
import math
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import nats_sources as ns
from nasforge.api import Benchmark, QueryError, create
from nasforge.cli import app
from nasforge.imports import import_release
from nasforge.imports.unpickle import RefusedPickle
from nasforge.release import verify

nats_bench = pytest.importorskip("nats_bench")
pytest.importorskip("xautodl", reason="the test sources are made by xautodl: pip install --no-deps xautodl==1.0.0")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, Path]:
    """(the simple folder, its import)."""
    root = tmp_path_factory.mktemp("nats")
    source = ns.simple_folder(root / "src")
    return source, Path(import_release(source, "tss", root / "nats-tss-v1.0.0")["release"])


def same(a, b, where: str = "") -> None:
    """Equal values (NaN equal to NaN), dict keys included; exact floats, no tolerance except where the source
    stored float32 and the oracle averaged in float32 (README, fidelity table)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(a), sorted(b))
        for key in a:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.float32):  # a source's float32, averaged by the oracle in float32 arithmetic
        assert a == b or math.isclose(a, b, rel_tol=2**-22), (where, a, b)
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (where, a, b)


def both(imported):
    """nats_bench on the source (every arch loaded: in fast mode it counts only those loaded so far,
    where a release knows what it holds from the start) and nasforge on its import."""
    source, release = imported
    theirs = nats_bench.create(str(source), "tss", fast_mode=True, verbose=False)
    for index in ns.ARCHS:
        theirs._prepare_info(index)
    return theirs, create(release, "tss", fast_mode=True, verbose=False)


def test_get_more_info_and_costs_answer_as_nats_bench(imported):
    theirs, ours = both(imported)
    for index in ns.ARCHS:
        for hp, seeds in (("12", [111]), ("200", [777, 888])):
            for dataset in ns.SETS:
                for is_random in (False, True, *seeds):
                    for iepoch in (None, 0, 7):
                        random.seed(index)
                        expected = theirs.get_more_info(index, dataset, iepoch=iepoch, hp=hp, is_random=is_random)
                        random.seed(index)
                        got = ours.get_more_info(index, dataset, iepoch=iepoch, hp=hp, is_random=is_random)
                        same(expected, got, f"get_more_info({index}, {dataset}, {iepoch}, {hp}, {is_random})")
                same(theirs.get_cost_info(index, dataset, hp), ours.get_cost_info(index, dataset, hp), f"cost {index}")
                assert theirs.get_latency(index, dataset, hp) == ours.get_latency(index, dataset, hp)
            for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
                for iepoch in (None, 3):
                    random.seed(7)
                    expected = theirs.simulate_train_eval(index, dataset, iepoch=iepoch, hp=hp)
                    random.seed(7)
                    same(expected, ours.simulate_train_eval(index, dataset, iepoch=iepoch, hp=hp), f"simulate {index}")
            assert theirs.query_info_str_by_arch(index, hp) == ours.query_info_str_by_arch(index, hp)
            assert theirs.query_by_arch(theirs[index], hp) == ours.query_by_arch(ours[index], hp)
    assert theirs.used_time == ours.used_time > 0
    ours.reset_time()
    assert ours.used_time == 0
    # The legacy rule: arch 0's FLOPs differ across seeds in the 5th decimal, so seed 888's count.
    flop, _ = ns.model_infos("tss", ours[ns.LEGACY_FLOPS], "cifar10")
    assert ours.get_cost_info(ns.LEGACY_FLOPS, "cifar10", "200")["flops"] == flop + 0.00002


def test_result_objects_answer_as_nats_bench(imported):
    theirs, ours = both(imported)
    for index in (ns.NO_999, ns.LEGACY_FLOPS):
        for hp in ("12", "200"):
            a, b = theirs.query_meta_info_by_index(index, hp), ours.query_meta_info_by_index(index, hp)
            assert a.get_dataset_names() == b.get_dataset_names() and a.arch_idx_str() == b.arch_idx_str()
            assert repr(a).split(", clear")[0] == repr(b).split(", clear")[0]
            for dataset in ns.SETS:
                assert a.get_dataset_seeds(dataset) == b.get_dataset_seeds(dataset)
                same(a.get_compute_costs(dataset), b.get_compute_costs(dataset))
                assert a.get_latency(dataset) == b.get_latency(dataset)
                assert a.get_total_epoch(dataset) == b.get_total_epoch(dataset)
                for setname in ("train", *ns.SETS[dataset]):
                    same(a.get_metrics(dataset, setname), b.get_metrics(dataset, setname))
                    same(a.get_metrics(dataset, setname, iepoch=1, is_random=a.get_dataset_seeds(dataset)[0]),
                         b.get_metrics(dataset, setname, iepoch=1, is_random=b.get_dataset_seeds(dataset)[0]))
                trials_a, trials_b = (api.query_by_index(index, dataset, hp) for api in (theirs, ours))
                assert list(trials_a) == list(trials_b)
                for seed, run in trials_a.items():
                    mine = trials_b[seed]
                    same(run.get_times(), mine.get_times())
                    same(run.get_train(), mine.get_train())
                    assert run.get_eval_set() == mine.get_eval_set() and run.get_latency() == mine.get_latency()
                    assert run.get_config(None) == mine.get_config(None)
                    for name in run.get_eval_set():
                        same(run.get_eval(name, 2), mine.get_eval(name, 2))
                same(theirs.get_net_param(index, dataset, None, hp), ours.get_net_param(index, dataset, None, hp))
            assert a.get_total_epoch() == b.get_total_epoch()
        assert theirs.get_net_config(index, "cifar100") == ours.get_net_config(index, "cifar100")
    with pytest.raises(ValueError, match="can not find random seed"):
        ours.query_meta_info_by_index(ns.NO_999, "200").get_metrics("cifar10", "train", is_random=999)


def test_space_methods_and_attributes_match_nats_bench(imported, capsys):
    theirs, ours = both(imported)
    assert len(ours) == len(theirs) == 15625 and ours.meta_archs == theirs.meta_archs
    assert ours.archstr2index == theirs.archstr2index
    assert ours[42] == theirs[42] and ours.arch(42) == theirs.arch(42)
    for api in (theirs, ours):
        with pytest.raises(ValueError):
            api.arch(15625)
        with pytest.raises(ValueError):
            api.query_index_by_arch(15625)  # an index out of range raises, as nats_bench's
    assert ours.query_index_by_arch("|bad|") == theirs.query_index_by_arch("|bad|") == -1
    structure = type("Cell", (), {"tostr": lambda self: ours[25]})()
    assert ours.query_index_by_arch(structure) == theirs.query_index_by_arch(structure) == 25
    random.seed(3)
    expected = [theirs.random() for _ in range(5)]
    random.seed(3)
    assert [ours.random() for _ in range(5)] == expected
    for name in ("search_space_name", "full_train_epochs", "full_epochs_in_paper", "is_topology", "is_size",
                 "fast_mode"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert sorted(ours.avaliable_hps) == sorted(["12", "200"]) and ours.evaluated_indexes == set(ns.ARCHS)
    assert Path(ours.archive_dir) == imported[1]
    for arch in (ours[3], ours[25], ours[ns.ALL_NONE]):
        assert ours.get_unique_str(arch) == theirs.get_unique_str(arch)
        assert ours.str2lists(arch) == theirs.str2lists(arch)
        assert (ours.str2matrix(arch) == theirs.str2matrix(arch)).all()
    assert ours.get_unique_str(3) == ours.get_unique_str(25)  # the isomorphic pair
    for hp in ("12", "200"):
        for dataset in ns.SETS:
            assert ours.statistics(dataset, hp) == theirs.statistics(dataset, hp)
    for dataset in ns.SETS:
        for metric in ("train", "valid", "test", "x-valid", "x-test", "ori-test"):
            for limits in ({}, {"flop_max": 80.05}, {"param_max": 0.5005}, {"flop_max": 1.0}):
                try:
                    expected = theirs.find_best(dataset, metric, hp="200", enforce_all=False, **limits)
                except (ValueError, KeyError):
                    with pytest.raises(ValueError):
                        ours.find_best(dataset, metric, hp="200", **limits)
                    continue
                assert ours.find_best(dataset, metric, hp="200", **limits) == expected, (dataset, metric, limits)
    capsys.readouterr()
    theirs.show(3)
    shown = capsys.readouterr().out
    ours.show(3)
    assert capsys.readouterr().out == shown
    ours.clear_params(3)
    ours.reload(index=3)
    same(theirs.get_more_info(3, "cifar100", hp="200", is_random=False),
         ours.get_more_info(3, "cifar100", hp="200", is_random=False))


def test_siblings_are_exactly_the_isomorphic_archs_held(imported):
    """The import holds one isomorphic pair (ns.ISOMORPHIC): each is the other's sibling, and no other arch is."""
    bench = Benchmark.open(imported[1])
    a, b = ns.ISOMORPHIC
    assert bench.siblings(a) == bench.siblings(b) == [a, b]
    assert all(bench.siblings(i) == [i] for i in ns.ARCHS if i not in ns.ISOMORPHIC)


def test_absent_archs_and_seeds_stay_absent(imported):
    _, release = imported
    api = create(release, "tss")
    with pytest.raises(QueryError, match="not in this release"):
        api.get_more_info(1, "cifar10", hp="200")
    info = api.query_meta_info_by_index(ns.NO_999, "200")
    assert info.get_dataset_seeds("cifar100") == [777, 888]
    archs = pl.read_parquet(release / "tables" / "archs.parquet")
    assert sorted(archs["arch_index"].unique()) == list(ns.ARCHS)
    assert archs.filter(pl.col("arch_index") == ns.NO_999, pl.col("hp") == "200")["n_seeds"].to_list() == [2] * 4
    bench = Benchmark.open(release)
    assert bench.trained_seeds(ns.NO_999, "cifar100", "200") == [777, 888]
    with pytest.raises(QueryError):
        bench.final(ns.NO_999, "cifar100", "200", seed=999)


def test_release_holds_provenance_audit_and_verifies(imported):
    source, release = imported
    assert verify(release) == []
    manifest = json.loads((release / "manifest.json").read_text())
    files = {f["name"]: f for f in manifest["source"]["files"]}
    assert set(files) == {"meta.pickle.pbz2", *(f"{i:06d}.pickle.pbz2" for i in ns.ARCHS)}
    assert files["000003.pickle.pbz2"]["bytes"] == (source / "000003.pickle.pbz2").stat().st_size
    for name in ("epochs", "archs", "run_times", "run_costs", "arch_times"):
        assert f"tables/{name}.parquet" in manifest["files"]
    epochs = pl.read_parquet(release / "tables" / "epochs.parquet")
    assert epochs.height == sum(int(hp) * len([s for s in seeds if not (i == ns.NO_999 and s == 999)])
                                for i in ns.ARCHS for hp, datasets in ns.HPS.items() for seeds in datasets.values())
    c100 = epochs.filter(pl.col("dataset") == "cifar100")
    assert c100["valtest_acc"].null_count() == 0 and epochs.filter(pl.col("dataset") == "cifar10")["valid_acc"].null_count() == \
        epochs.filter(pl.col("dataset") == "cifar10").height
    found = pl.read_parquet(release / "validation" / "findings.parquet")

    def archs_of(finding: str) -> set[int]:
        return set(found.filter(pl.col("finding") == finding)["arch_index"].to_list())

    assert archs_of("missing_seeds") == {ns.NO_999}
    assert archs_of("cost_differs_across_seeds") == {ns.LEGACY_FLOPS}
    assert archs_of("isomorphic_disagree") & set(ns.ISOMORPHIC)
    assert archs_of("times_identical_across_seeds") == set(ns.ARCHS)
    assert archs_of("latency_identical_across_seeds") == set(ns.ARCHS)
    assert not archs_of("input_independent_above_chance") and not archs_of("valtest_not_pooled")
    assert not archs_of("non_finite") and not archs_of("out_of_range")
    assert len(archs_of("missing_arch")) == 15625 - len(ns.ARCHS)
    card = (release / "DATACARD.md").read_text()
    assert "| missing_seeds | 1 |" in card and "| cost_differs_across_seeds | 1 |" in card
    assert (release / "validation" / "docs" / "index.html").is_file()
    assert manifest["audit"]["missing_seeds"] == 1


def test_the_tamperings_refused_on_fabricated_releases_are_refused_on_an_import(imported, tmp_path):
    from helpers.tamper import run_battery

    run_battery(imported[1], tmp_path)


def test_reimport_is_byte_identical_and_layouts_agree(imported, tmp_path):
    source, release = imported
    again = Path(import_release(source, "tss", tmp_path / release.name)["release"])
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        assert path.read_bytes() == (again / path.relative_to(release)).read_bytes(), path
    single = import_release(ns.single_file(tmp_path / "single"), "tss", tmp_path / "single-rel")["release"]
    nb201 = import_release(ns.nb201_file(tmp_path / "nb201"), "tss", tmp_path / "nb201-rel")["release"]
    for other in (single, nb201):
        for table in ("archs", "epochs", "run_times", "run_costs"):
            assert pl.read_parquet(Path(other) / "tables" / f"{table}.parquet").equals(
                pl.read_parquet(release / "tables" / f"{table}.parquet")), (other, table)
    assert json.loads((Path(nb201) / "manifest.json").read_text())["source"]["layout"] == "nb201"


def test_hostile_pickle_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    source = ns.hostile_folder(tmp_path / "src", marker)
    out = tmp_path / "release"
    with pytest.raises(RefusedPickle, match=r"000000\.pickle\.pbz2: refused to unpickle posix\.system|nt\.system"):
        import_release(source, "tss", out)
    assert not marker.exists() and not out.exists()
    assert not list(tmp_path.glob(".release*"))
    result = CliRunner().invoke(app, ["import", str(source), "--out", str(out)])
    assert result.exit_code == 2 and "refused to unpickle" in result.output and not marker.exists()


def test_trained_weights_are_skipped_unread(tmp_path):
    import torch

    source = ns.simple_folder(tmp_path / "src", archs=(3,))
    states = ns.arch_states(3)
    states["200"]["all_results"][("cifar10", 777)]["net_state_dict"] = {"w": torch.ones(3), "b": torch.zeros(2)}
    with __import__("bz2").BZ2File(source / "000003.pickle.pbz2", "wb") as f:
        pickle.dump(states, f, protocol=4)
    result = CliRunner().invoke(app, ["import", str(source), "--space", "tss", "--out", str(tmp_path / "rel")])
    assert result.exit_code == 0, result.output
    assert "release ready" in result.output and "2 weight tensors skipped" in result.output
    assert "times_identical_across_seeds 1" in result.output  # the audit's findings, summarised
    assert "Trained weights skipped: 2 tensor(s)" in (tmp_path / "rel" / "DATACARD.md").read_text()


def test_wrong_space_or_layout_is_a_clear_error_and_writes_nothing(imported, tmp_path):
    source, _ = imported
    with pytest.raises(ValueError, match="Pass the matching --space"):
        import_release(source, "sss", tmp_path / "rel")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="unknown format"):
        import_release(bad, "tss", tmp_path / "rel")
    broken = tmp_path / "broken-simple"
    shutil.copytree(source, broken)
    (broken / "000003.pickle.pbz2").write_bytes(b"BZh9 not really")
    with pytest.raises(ValueError, match=r"000003\.pickle\.pbz2: not a readable NATS-Bench pickle"):
        import_release(broken, "tss", tmp_path / "rel")
    assert not (tmp_path / "rel").exists()


def test_query_and_search_run_on_an_import(imported):
    _, release = imported
    runner = CliRunner()
    result = runner.invoke(app, ["query", str(release), "3", "--dataset", "cifar100", "--hp", "200"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["search", str(release), "--algo", "random", "--dataset", "cifar100", "--hp", "200",
                                 "--runs", "2", "--time-budget", "200"])
    assert result.exit_code == 0, result.output


def test_size_space_import_answers_as_nats_bench(tmp_path):
    source = ns.simple_folder(tmp_path / "src", archs=ns.SSS_ARCHS, space="sss")
    release = import_release(source, "sss", tmp_path / "nats-sss")["release"]
    theirs = nats_bench.create(str(source), "sss", fast_mode=True, verbose=False)
    for index in ns.SSS_ARCHS:
        theirs._prepare_info(index)
    ours = create(release, "size", fast_mode=True, verbose=False)
    assert type(ours).__name__ == "NATSsize" and ours.is_size and ours.full_train_epochs == 90
    assert len(ours) == len(theirs) == 32768 and ours[32767] == theirs[32767] == "64:64:64:64:64"
    for index in ns.SSS_ARCHS:
        for hp in ("01", "90"):
            for dataset in ns.SETS:
                for is_random in (False, True, 777):
                    random.seed(index)
                    expected = theirs.get_more_info(index, dataset, hp=hp, is_random=is_random)
                    random.seed(index)
                    same(expected, ours.get_more_info(index, dataset, hp=hp, is_random=is_random), f"{index} {dataset}")
                same(theirs.get_cost_info(index, dataset, hp), ours.get_cost_info(index, dataset, hp))
            assert theirs.query_info_str_by_arch(index, hp) == ours.query_info_str_by_arch(index, hp)
            assert theirs.statistics("cifar100", hp) == ours.statistics("cifar100", hp)
        assert theirs.get_net_config(index, "cifar10") == ours.get_net_config(index, "cifar10")
    assert ours.find_best("cifar100", "x-test", hp="90") == theirs.find_best("cifar100", "x-test", hp="90",
                                                                          enforce_all=False)


def test_an_import_is_audited_by_retraining_when_its_data_is_given(imported, tmp_path):
    """`nasforge audit` on an import: re-trains under NATS-Bench's protocol of the budget (lr by lr), expects
    agreement within noise, not bytes (NATS-Bench trained with its own code), and flags numbers no training gave."""
    from helpers import fabricate
    from nasforge.data import prepare
    from nasforge.replicate import audit_release

    (archive, checksums), _ = fabricate.cifar10(tmp_path / "src")
    data = prepare("cifar10", tmp_path / "data", archive, checksums)
    summary = audit_release(imported[1], 1, tmp_path / "audit", data=data, dataset="cifar10", hp="12")
    assert not summary["expect_identical"] and "import" in summary["why"]
    assert summary["protocol"]["batch_size"] == 256 and summary["seed_noise"] == 1.0  # one seed per arch at hp 12
    table = pl.read_parquet(tmp_path / "audit/audit.parquet")
    assert table["seed"].to_list() == [111] and table["epochs"].to_list() == [12]
    arch = table["arch_index"][0]
    retrained = pl.read_parquet(tmp_path / "audit/retrained.parquet").sort("epoch")
    release = Benchmark.open(imported[1]).epochs(arch, "cifar10", "12", 111)
    assert retrained["lr"].to_list() == release["lr"].to_list()  # the budget's NATS-Bench schedule, epoch by epoch
    # The fabricated source's accuracies climb to ~90% on a set no 12 epochs on 50 images can learn.
    assert arch != ns.ALL_NONE  # (sample seed 0 picks a learning arch)
    assert table["verdict"].to_list() == ["outside_noise"] and summary["verdict"] == "failed"


# --- NAS-Bench-201: its own API (nas_201_api 2.1) is the oracle of an import of its files ---------------------
@pytest.fixture(scope="module", params=["1_0", "1_1"])
def nb201(request, tmp_path_factory) -> tuple[object, object]:
    """(NASBench201API on the file, nasforge's facade on its import), NB-201 v1.0 and v1.1 layouts."""
    import torch

    nas_201_api = pytest.importorskip("nas_201_api")
    root = tmp_path_factory.mktemp(f"nb201-{request.param}")
    source = ns.nb201_file(root / "src", version=request.param)
    release = import_release(source, "tss", root / "nb201-tss")["release"]
    # The oracle's own torch.load is weights-only since torch 2.6 and refuses the numpy scalars NB-201's
    # collection wrote; the test made this file, so it loads it whole for the oracle.
    theirs = nas_201_api.NASBench201API(torch.load(source, map_location="cpu", weights_only=False), verbose=False)
    return theirs, create(release, "tss", verbose=False)


def agree(theirs, ours, call, where: str) -> None:
    """``call`` answers the same on both APIs, random draws included, or raises the same type on both."""
    random.seed(7)
    try:
        expected = call(theirs)
    except (KeyError, ValueError, TypeError) as err:  # e.g. v1.0 holds some sets at the last epoch only, no times
        random.seed(7)
        with pytest.raises(type(err)):
            call(ours)
        return
    random.seed(7)
    same(expected, call(ours), where)


def test_nb201_import_answers_as_nas_201_api(nb201):
    theirs, ours = nb201
    assert type(ours).__name__ == "NASBench201API" and ours.evaluated_indexes == theirs.evaluated_indexes
    for index in ns.ARCHS:
        for hp in ("12", "200"):
            for dataset in ns.SETS:
                for is_random in (False, True, *ours.query_meta_info_by_index(index, hp).get_dataset_seeds(dataset)):
                    for iepoch in (None, 0, 7):
                        agree(theirs, ours, lambda api: api.get_more_info(
                            index, dataset, iepoch=iepoch, hp=hp, is_random=is_random),  # noqa: B023
                            f"get_more_info({index}, {dataset}, {iepoch}, {hp}, {is_random})")
                # NB-201 averages FLOPs/params over seeds (nats_bench 1.8 takes seed 888's where they differ)
                agree(theirs, ours, lambda api: api.get_cost_info(index, dataset, hp), f"cost {index}")  # noqa: B023
                agree(theirs, ours, lambda api: api.get_latency(index, dataset, hp), f"latency {index}")  # noqa: B023
            for dataset in ("cifar10", "cifar100", "ImageNet16-120"):  # latency: hp 12's, whatever hp is
                agree(theirs, ours, lambda api: api.simulate_train_eval(index, dataset, hp=hp), f"simulate {index}")  # noqa: B023
            assert theirs.query_info_str_by_arch(index, hp) == ours.query_info_str_by_arch(index, hp)
        assert theirs.get_net_config(index, "cifar100") == ours.get_net_config(index, "cifar100")
        same(theirs.get_net_param(index, "cifar10", None, "200"), ours.get_net_param(index, "cifar10", None, "200"))
    legacy = theirs.get_cost_info(ns.LEGACY_FLOPS, "cifar10", "200")["flops"]
    assert ours.get_cost_info(ns.LEGACY_FLOPS, "cifar10", "200")["flops"] == legacy  # the mean, not seed 888's
    for dataset in ns.SETS:
        for metric in ("train", "x-valid", "x-test", "ori-test", "valid", "test"):
            for limits in ({}, {"FLOP_max": 20.0}, {"Param_max": 0.2}, {"FLOP_max": 1.0}):
                agree(theirs, ours, lambda api: api.find_best(dataset, metric, hp="200", **limits),  # noqa: B023
                      f"find_best {dataset} {metric} {limits}")


# --- trained weights: NATS-Bench's "full" files and NB-201's .pth --------------------------------------------
def same_weights(expected, got, where: str) -> None:
    """Two state dicts: the same keys in the same order, every tensor bit for bit."""
    import torch

    assert list(expected) == list(got), where
    for key, tensor in expected.items():
        assert got[key].dtype == tensor.dtype and torch.equal(got[key], tensor), (where, key)


@pytest.fixture(scope="module")
def full_import(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("full")
    source = ns.simple_folder(root / "src", archs=ns.WEIGHT_ARCHS, weights=True)
    summary = import_release(source, "tss", root / "nats-tss-full", weights=True)
    assert summary["weights_runs"] == sum(len(s) - (i == ns.NO_999 and hp == "200") for i in ns.WEIGHT_ARCHS
                                          for hp, datasets in ns.HPS.items() for s in datasets.values())
    return source, Path(summary["release"])


def test_weights_are_served_as_nats_bench_serves_them_and_give_the_recorded_accuracy(full_import):
    source, release = full_import
    theirs = nats_bench.create(str(source), "tss", fast_mode=True, verbose=False)
    ours = create(release, "tss", verbose=False)
    for index in ns.WEIGHT_ARCHS:
        theirs._prepare_info(index)
        for hp, datasets in ns.HPS.items():
            for dataset in datasets:
                expected, got = (api.get_net_param(index, dataset, None, hp) for api in (theirs, ours))
                assert list(expected) == list(got)
                for seed, state in expected.items():
                    same_weights(state, got[seed], f"{index} {dataset} {hp} {seed}")
                    same_weights(state, ours.get_net_param(index, dataset, seed, hp), f"seed {seed}")
                    # get_net_config's network (xautodl's own) with these weights scores what the file recorded
                    net = ns.network("tss", ours[index], ns.CLASSES[dataset])
                    assert ours.get_net_config(index, dataset) == ns.net_config("tss", ours[index], ns.CLASSES[dataset])
                    net.load_state_dict(got[seed])
                    recorded = ours.query_meta_info_by_index(index, hp).get_metrics(dataset, "ori-test", is_random=seed)
                    assert ns.accuracy(net, dataset) == recorded["accuracy"]
    manifest = json.loads((release / "manifest.json").read_text())
    files = [f for f in manifest["files"] if f.startswith("weights/")]
    assert files and "tables/weights.parquet" in manifest["files"] and verify(release) == []
    assert "Trained weights:" in (release / "DATACARD.md").read_text()


def test_an_altered_weights_file_is_refused(full_import, tmp_path):
    from nasforge.api.benchmark import ReleaseError

    _, release = full_import
    copy = tmp_path / release.name
    shutil.copytree(release, copy)
    victim = sorted((copy / "weights").iterdir())[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    ours = create(copy, "tss", verbose=False)
    table = pl.read_parquet(copy / "tables" / "weights.parquet").filter(pl.col("sha256") == victim.stem)
    row = table.row(0, named=True)
    with pytest.raises(ReleaseError, match="sha256 differs from the manifest"):
        ours.get_net_param(row["arch_index"], row["dataset"], row["seed"], row["hp"])
    assert any(victim.name in problem for problem in verify(copy))


def test_without_weights_asked_for_a_full_file_imports_its_metrics_only(full_import, tmp_path):
    source, release = full_import
    summary = import_release(source, "tss", tmp_path / "metrics-only")
    assert summary["weights_runs"] == 0 and summary["weights_skipped"] > 0
    assert not (tmp_path / "metrics-only" / "weights").exists()
    assert create(tmp_path / "metrics-only", "tss").get_net_param(ns.ALL_NONE, "cifar10", 777, "200") is None
    for table in ("archs", "epochs", "run_costs"):  # the metrics are the same with or without the weights
        assert pl.read_parquet(tmp_path / "metrics-only" / "tables" / f"{table}.parquet").equals(
            pl.read_parquet(release / "tables" / f"{table}.parquet"))


def test_nb201_weights_are_served_as_nas_201_api_serves_them(tmp_path):
    import torch

    nas_201_api = pytest.importorskip("nas_201_api")
    source = ns.nb201_file(tmp_path / "src", archs=ns.WEIGHT_ARCHS, weights=True)
    release = import_release(source, "tss", tmp_path / "nb201-full", weights=True)["release"]
    theirs = nas_201_api.NASBench201API(torch.load(source, map_location="cpu", weights_only=False), verbose=False)
    ours = create(release, "tss", verbose=False)
    for index in ns.WEIGHT_ARCHS:
        for hp in ("12", "200"):
            for dataset in ns.SETS:
                expected, got = (api.get_net_param(index, dataset, None, hp) for api in (theirs, ours))
                assert list(expected) == list(got)
                for seed, state in expected.items():
                    same_weights(state, got[seed], f"{index} {dataset} {hp} {seed}")


def test_numpy_scalars_are_numbers_and_anything_else_numpy_is_refused(tmp_path):
    """What the collection code wrote (numpy scalars of bool, int and float dtypes, under numpy 1.x and 2.x
    names) reads back as plain numbers of the same value; an object, complex or structured dtype, an array,
    and a scalar whose bytes do not fit its dtype are refused before anything is built, in .pbz2 and .pth alike."""
    import bz2

    import torch

    from nasforge.imports.unpickle import load_pickle, load_pth

    values = {"f8": np.float64(0.1 + 0.2), "f4": np.float32(1.1), "i8": np.int64(-3), "u1": np.uint8(7),
              "b": np.bool_(True), "big": np.dtype(">f8").type(2.5)}
    with bz2.BZ2File(tmp_path / "ok.pbz2", "wb") as f:
        pickle.dump(values, f, protocol=4)  # numpy 2 names
    ns.save_numpy1(values, tmp_path / "ok1.pbz2")  # numpy 1.x names
    torch.save(values, tmp_path / "ok.pth")  # protocol 2: bytes as _codecs.encode
    for got in (load_pickle(tmp_path / "ok.pbz2"), load_pickle(tmp_path / "ok1.pbz2"), load_pth(tmp_path / "ok.pth")):
        assert got == {k: v.item() for k, v in values.items()}
        assert all(type(v) in (float, int, bool) for v in got.values())
        assert np.float64(got["f8"]).tobytes() == values["f8"].tobytes()  # bit-equal

    class ObjectScalar:  # numpy's own rebuilder, asked for an object-dtype scalar holding a list
        def __reduce__(self):
            return np._core.multiarray.scalar, (np.dtype("O"), [1, 2])

    class ShortScalar:  # a float64 from three bytes
        def __reduce__(self):
            return np._core.multiarray.scalar, (np.dtype("f8"), b"abc")

    refused = {"object": ObjectScalar(), "complex": np.complex128(1j), "array": np.arange(3.0),
               "structured": np.zeros(1, dtype=[("a", "f8")])[0], "short": ShortScalar()}
    for name, value in refused.items():
        with bz2.BZ2File(tmp_path / f"{name}.pbz2", "wb") as f:
            pickle.dump({"params": value}, f, protocol=4)
        torch.save({"params": value}, tmp_path / f"{name}.pth")
        with pytest.raises(RefusedPickle, match=rf"{name}\.pbz2: refused"):
            load_pickle(tmp_path / f"{name}.pbz2")
        with pytest.raises(RefusedPickle, match=rf"{name}\.pth: (refused|torch's weights-only loader refused)"):
            load_pth(tmp_path / f"{name}.pth")


def test_an_out_that_could_destroy_data_is_refused_and_nothing_is_touched(imported, tmp_path):
    """--out never equals, holds or lies inside the source, and replaces only a nasforge release."""
    source, _ = imported
    copy = tmp_path / "home" / source.name  # the source beside unrelated files, as in ~/.torch
    shutil.copytree(source, copy)
    (tmp_path / "home" / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in (tmp_path / "home").rglob("*") if p.is_file()}
    blank = tmp_path / "blank"
    blank.mkdir()
    (tmp_path / "empty").mkdir()
    for out, why in ((copy, "is the source"), (tmp_path / "home", "holds the source"),
                     (copy / "inside", "lies inside the source"), (tmp_path / "home" / "notes.txt", "not a folder")):
        with pytest.raises(ValueError, match=f"--out {out}: .*{why}"):
            import_release(copy, "tss", out)
    (blank / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not a nasforge release"):
        import_release(copy, "tss", blank)
    result = CliRunner().invoke(app, ["import", str(copy), "--out", str(copy)])
    assert result.exit_code == 2 and "must lie outside the source" in result.output
    assert {p: p.read_bytes() for p in (tmp_path / "home").rglob("*") if p.is_file()} == before
    assert (blank / "thesis.tex").read_text() == "years of work" and not list(tmp_path.glob(".*partial"))
    # An empty folder or an earlier release at --out is replaced.
    import_release(copy, "tss", tmp_path / "empty")
    import_release(copy, "tss", tmp_path / "empty")
    assert verify(tmp_path / "empty") == []


def test_two_imports_into_one_out_take_turns_and_leave_a_whole_release(imported, tmp_path):
    """They once shared one staging folder and each deleted it on start: the result lacked tables/ yet verified."""
    import threading

    source, release = imported
    out, errors = tmp_path / "nats-tss", []

    def run() -> None:
        try:
            import_release(source, "tss", out)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and verify(out) == []
    for table in ("archs", "epochs", "run_costs"):
        assert (out / "tables" / f"{table}.parquet").read_bytes() == (release / "tables" / f"{table}.parquet").read_bytes()
    assert not list(tmp_path.glob(".*partial")) and not list(tmp_path.glob(".*.old"))


@pytest.mark.slow
def test_source_files_that_could_escape_hang_or_mislead_are_refused_and_nothing_is_written(imported, tmp_path):
    """A budget key that is a path, two files for one arch, a FIFO and a link to /dev/zero among the arch files:
    each a one-line error naming the file, nothing written outside the test's folder, nothing at --out."""
    import os
    import re
    import subprocess
    import sys

    source, _ = imported

    def folder(name: str) -> Path:
        copy = tmp_path / name / source.name
        shutil.copytree(source, copy)
        return copy

    bad_budget = folder("budget")
    states = ns.arch_states(3)
    states["12/../../../../ESCAPED"] = states.pop("12")
    ns.save_numpy1(states, bad_budget / "000003.pickle.pbz2")
    bool_epochs = folder("bool_epochs")  # True is an int to Python, and once imported as 1 epoch
    states = ns.arch_states(3)
    next(iter(states["12"]["all_results"].values()))["epochs"] = True
    ns.save_numpy1(states, bool_epochs / "000003.pickle.pbz2")
    huge = folder("huge")  # 1e308 once imported, was flagged by the audit, and still won find_best
    states = ns.arch_states(3)
    next(iter(states["12"]["all_results"].values()))["eval_acc1es"]["ori-test@11"] = 1e308
    ns.save_numpy1(states, huge / "000003.pickle.pbz2")
    twice = folder("twice")
    shutil.copy(twice / "000003.pickle.pbz2", twice / "0000003.pickle.pbz2")
    fifo = folder("fifo")
    (fifo / "000009.pickle.pbz2").unlink()
    os.mkfifo(fifo / "000009.pickle.pbz2")
    zero = folder("zero")
    (zero / "000009.pickle.pbz2").unlink()
    (zero / "000009.pickle.pbz2").symlink_to("/dev/zero")
    cases = {bad_budget: r"000003\.pickle\.pbz2: budget key '12/\.\./.*' is not a NATS-Bench budget",
             bool_epochs: r"simple arch 3 \[12\]\[cifar10-valid, 111\]: 'epochs' is True, expected a positive integer",
             huge: r"simple arch 3 \[12\]\[cifar10-valid, 111\]: test_acc holds 1e\+308, outside 0\.\.100",
             twice: r"0{5,6}3\.pickle\.pbz2 and 0{5,6}3\.pickle\.pbz2 both hold arch 3",
             fifo: r"000009\.pickle\.pbz2: not a regular file",
             zero: r"000009\.pickle\.pbz2: cannot be opened as a plain file"}
    for src, message in cases.items():
        out = src.parent / "release"
        # in a subprocess with a timeout: a FIFO or /dev/zero once hung the import
        run = subprocess.run([sys.executable, "-m", "nasforge.cli", "import", str(src), "--out", str(out)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, (src, run.stdout, run.stderr)
        assert re.search(message, run.stderr.replace("\n", " ")), (message, run.stderr)
        assert not out.exists() and not list(src.parent.glob(".*partial*"))
    assert not list(tmp_path.rglob("ESCAPED*")) and not list(tmp_path.parent.glob("ESCAPED*"))


def test_the_bytes_parsed_are_the_bytes_recorded_when_a_file_is_swapped_mid_import(imported, tmp_path, monkeypatch):
    """Each source file is read once: a file replaced between a hash pass and a parse pass once gave values from
    the new file under the old file's sha256."""
    import hashlib

    from nasforge.imports import unpickle

    source, release = imported
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    target, other = copy / "000003.pickle.pbz2", copy / "000009.pickle.pbz2"
    original = target.read_bytes()
    decompress = unpickle.bz2.open

    def swap_then_decompress(file, *args, **kwargs):
        """Runs once the importer has begun with the file: swaps it, atomically, before its bytes are parsed."""
        reading = getattr(getattr(file, "raw", None), "path", file)  # a path, or a stream over one
        if Path(reading).name == target.name and target.read_bytes() == original:
            staged = copy.parent / "swap.tmp"
            staged.write_bytes(other.read_bytes())
            staged.replace(target)
        return decompress(file, *args, **kwargs)

    monkeypatch.setattr(unpickle.bz2, "open", swap_then_decompress)
    out = Path(import_release(copy, "tss", tmp_path / "rel")["release"])
    assert target.read_bytes() != original  # the swap happened
    files = {f["name"]: f for f in json.loads((out / "tables" / "source.json").read_text())["files"]}
    assert files[target.name]["sha256"] == hashlib.sha256(original).hexdigest()
    assert (out / "tables" / "epochs.parquet").read_bytes() == (release / "tables" / "epochs.parquet").read_bytes()


def _run0(states: dict) -> dict:
    """The first run record of hp 12 in an arch's states (cifar10-valid, seed 111)."""
    return next(iter(states["12"]["all_results"].values()))


@pytest.mark.parametrize("tamper,message", [
    (lambda st: _run0(st).update(epochs=10**10), "'epochs' is 10000000000, expected a positive integer of at most 1000"),
    (lambda st: st["12"]["dataset_seed"].update({"cifar10-valid": ["abc"]}), "expected a list of integer seeds"),
    (lambda st: st["12"]["dataset_seed"].update({7: [111]}), "keyed by"),
    (lambda st: _run0(st).update(train_losses={0: "low"}), "a str where NATS-Bench records a number"),
    (lambda st: _run0(st).update(latency=["fast"]), "a str where NATS-Bench records a number"),
    (lambda st: _run0(st).update(eval_names=5), "eval_names is a int, expected a list of names"),
    (lambda st: _run0(st).update(eval_acc1es=[1, 2]), "eval_acc1es is a list"),
    (lambda st: _run0(st).update(train_losses=[[[[0.5]]]]), "a list where NATS-Bench records a number"),
])
def test_wrong_types_in_a_source_pickle_are_one_line_errors(imported, tmp_path, tamper, message):
    source, _ = imported
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    states = ns.arch_states(3)
    tamper(states)
    ns.save_numpy1(states, copy / "000003.pickle.pbz2")
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        import_release(copy, "tss", tmp_path / "rel")
    assert str(copy) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "rel").exists()


def test_decompressed_sizes_and_declared_lengths_are_bounded(imported, tmp_path, monkeypatch):
    """A 1 KB bz2 bomb once expanded to 1.5 GB, and a declared 2**62-byte string was allocated as declared."""
    import bz2
    import struct

    from nasforge.imports import unpickle

    source, _ = imported
    monkeypatch.setattr(unpickle, "ARCH_FILE_LIMIT", 1 << 20)  # the bound, scaled down so the test stays small
    bomb = tmp_path / "bomb" / source.name
    shutil.copytree(source, bomb)
    (bomb / "000003.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"12": "0" * (8 << 20)}, protocol=4)))
    assert (bomb / "000003.pickle.pbz2").stat().st_size < 4096
    with pytest.raises(ValueError, match=r"000003\.pickle\.pbz2: holds more than 1048576 bytes once decompressed"):
        import_release(bomb, "tss", tmp_path / "rel")
    declared = tmp_path / "declared" / source.name
    shutil.copytree(source, declared)
    huge = b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b"tiny"  # BINUNICODE8 of 2**62 bytes, then 4
    (declared / "000003.pickle.pbz2").write_bytes(bz2.compress(huge))
    with pytest.raises(ValueError, match=r"000003\.pickle\.pbz2: not a readable NATS-Bench pickle"):
        import_release(declared, "tss", tmp_path / "rel")
    assert not (tmp_path / "rel").exists()
