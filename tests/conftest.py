import os
import time

import pytest

from helpers import fabricate
from helpers.pipeline import RELEASE, run, workspace
from nasforge.data import prepare

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="session")
def mnist5k_prepared(tmp_path_factory):
    """The real embedded dataset, prepared once per test session."""
    return prepare("mnist5k", tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def mnist_small(tmp_path_factory, mnist5k_prepared):
    """Data root holding a 640-train / 100-valid / 100-test balanced slice of mnist5k."""
    return fabricate.mnist_slice(mnist5k_prepared, tmp_path_factory.mktemp("small"),
                                 {"train": 64, "valid": 10, "test": 10})


@pytest.fixture(scope="session")
def mnist_tiny(tmp_path_factory, mnist5k_prepared):
    """Data root holding a 160-train / 50 / 50 slice: for determinism checks, not accuracy."""
    return fabricate.mnist_slice(mnist5k_prepared, tmp_path_factory.mktemp("tiny"),
                                 {"train": 16, "valid": 5, "test": 5})


def pytest_report_header(config) -> str | None:
    """On CI (.ci/run sets NASFORGE_CI_T0): how long the set-up took before the first test."""
    start = os.environ.get("NASFORGE_CI_T0")
    return f"ci: set-up (Debian packages, venv, pip): {time.time() - float(start):.0f} s" if start else None


@pytest.fixture(scope="session")
def tiny_builds(tmp_path_factory):
    """Two independent fresh workspaces of the tiny configuration (helpers/pipeline.py): one built by
    `nasforge pipeline` (Snakemake), one by `dvc repro`. Built once a session: the pipeline and SLURM tests
    compare against them; a test that changes one owns that change (test_pipeline.py says which)."""
    snake = workspace(tmp_path_factory.mktemp("snakemake"))
    result = run(["nasforge", "pipeline"], snake)
    assert f"release: {RELEASE}" in result.stdout and "dvc.lock records this build" in result.stdout
    dvc = workspace(tmp_path_factory.mktemp("dvc"))
    run(["dvc", "repro"], dvc)
    return snake, dvc
