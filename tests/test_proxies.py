"""Training-free proxies on the real embedded digits (a small slice): values, determinism, edge cases."""

import math

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from helpers.archs import ALL_CONV, ALL_NONE
from nasforge.cli import app
from nasforge.schema import PROXIES
from nasforge.search.proxies import jacob_cov_score, naswot_score, score_archs
from nasforge.spaces import get_space
from nasforge.train import environment
from nasforge.train.splits import load_splits

TSS = get_space("tss")


@pytest.fixture(scope="module")
def splits(mnist_small):
    environment.pin(1)
    return load_splits(mnist_small / "mnist5k", torch.device("cpu"))


def test_naswot_kernel_and_jacob_cov_by_hand():
    codes = torch.eye(3)  # K = [[3,1,1],[1,3,1],[1,1,3]]: det 20
    assert naswot_score(codes) == pytest.approx(math.log(20))
    assert naswot_score(torch.ones(4, 5)) == -math.inf  # identical codes: singular kernel
    uncorrelated = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])  # correlation 0: eigenvalues 1, 1
    assert jacob_cov_score(uncorrelated) == pytest.approx(-2 * (math.log(1 + 1e-5) + 1 / (1 + 1e-5)))
    assert jacob_cov_score(torch.zeros(2, 4)) == -math.inf


def test_proxies_are_deterministic_and_independent_of_the_other_archs(splits):
    archs = [0, 9, TSS.index(ALL_CONV), TSS.index(ALL_NONE)]
    a = score_archs("tss", archs, 777, splits, 16, torch.device("cpu"))
    b = score_archs("tss", archs, 777, splits, 16, torch.device("cpu"))
    assert a.equals(b) and a["arch_index"].to_list() == sorted(archs)
    alone = score_archs("tss", [9], 777, splits, 16, torch.device("cpu"))
    assert alone.row(0) == a.filter(pl.col("arch_index") == 9).row(0)
    other_seed = score_archs("tss", [9], 888, splits, 16, torch.device("cpu"))
    assert other_seed["naswot"][0] != alone["naswot"][0]


def test_proxy_values_behave_as_the_papers_describe(splits):
    table = score_archs("tss", [9, TSS.index(ALL_CONV), TSS.index(ALL_NONE)], 777, splits, 16, torch.device("cpu"))
    light, conv, none = (table.filter(pl.col("arch_index") == i).row(0, named=True)
                         for i in (9, TSS.index(ALL_CONV), TSS.index(ALL_NONE)))
    # The all-none cell cannot tell inputs apart: the worst score, and no gradient reaches a weight.
    assert none["naswot"] == none["jacob_cov"] == -math.inf
    assert none["grad_norm"] == none["snip"] == none["synflow"] == 0.0
    for proxy in PROXIES:
        assert np.isfinite(light[proxy]) and np.isfinite(conv[proxy])
    # Synflow multiplies |weights| along paths: more conv paths, (far) more flow.
    assert conv["synflow"] > light["synflow"] > 0 and conv["params"] > light["params"]


def test_sss_proxies_and_bad_batch_size(splits):
    table = score_archs("sss", [0, 32767], 777, splits, 8, torch.device("cpu"))
    assert table["flops"][0] < table["flops"][1]
    assert all(np.isfinite(table[p].to_numpy()).all() for p in PROXIES)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        score_archs("tss", [0], 777, splits, 1, torch.device("cpu"))


def test_proxies_cli_scores_every_planned_arch(mnist_small, tmp_path):
    from nasforge.plan import make_plan
    from nasforge.tables import write_table

    results = tmp_path / "results"
    results.mkdir()
    (results / "data").symlink_to(mnist_small)
    write_table(make_plan("tss", 3, 1, 0, None), results / "plan/tss.parquet", ["arch_index"])
    params = ('{"space": "tss", "datasets": ["mnist5k"], "train": {"seeds": [777], "threads": 1, "device": "cpu"},'
              ' "search": {"proxies": {"batch_size": 8}}}')
    result = CliRunner().invoke(app, ["proxies", "--params-json", params, "--results", str(results)])
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(results / "search/tss/proxies.parquet")
    assert table.height == 3 and table["batch_size"].unique().to_list() == [8]
    (results / "plan/tss.parquet").unlink()
    result = CliRunner().invoke(app, ["proxies", "--params-json", params, "--results", str(results)])
    assert result.exit_code != 0 and "no plan" in result.output
