"""The whole pipeline on a tiny configuration, through Snakemake and through DVC.

Slow (minutes): real training of two archs on mnist5k in fresh copies of the
repository. Deselect with -m "not slow" for a quick local run.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from nasforge.schema import SHARD_KEYS as KEYS
from nasforge.tables import read_metadata, write_table

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "results/release/nasforge-tss-v0.0.1"
TINY = {
    "release": {"name": "nasforge", "version": "0.0.1"},
    "space": "tss",
    "datasets": ["mnist5k"],
    "sources": {},
    "plan": {"archs": 2, "sample_seed": 0, "shards": 2, "include": [
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"]},
    "train": {"budgets": ["01"], "seeds": [777], "engine": "reference", "device": "cpu", "threads": 1,
              "latency_repeats": 1, "protocol": {"batch_size": 128}},
    "validate": {"chance_tolerance": 2.0, "isomorphic_tolerance": 5.0, "seed_spread_max": 20.0,
                 "seed_spread_median_max": 10.0},
    "search": {"algorithms": ["random", "rea", "reinforce", "bohb", "local", "naswot"], "runs": 2,
               "time_model": "flops", "gflops": 100.0, "time_budget": {"mnist5k": 5.0}, "naswot_samples": 2,
               "proxies": {"batch_size": 8}},
    # One weight-sharing search of two steps: its derived arch (not among the two above) is trained and scored.
    "oneshot": {"algorithms": ["random"], "seeds": [777], "epochs": {"tss": 1}, "steps_per_epoch": 2,
                "cells_per_stage": 1, "eval_batch_size": 50, "candidates": 2},
}


def workspace(path: Path, params: dict = TINY) -> Path:
    """A fresh copy of the repository (what a clone holds) with the tiny params, as its own git repo."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, path / rel)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=ci@nasforge", "-c", "user.name=ci"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "workspace"]):
        subprocess.run(git + cmd, cwd=path, check=True, timeout=120)
    return path


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    try:
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"{cmd} did not finish within {timeout} s:\n{(err.stdout or b'')[-3000:]!r}") from None
    if check and result.returncode:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def deterministic_files(root: Path) -> dict[str, str]:
    """sha256 of every file under results/ except the measured ones (wall-clock seconds)."""
    out = {}
    for path in sorted((root / "results").rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "measured" not in rel.split("/") and path.name != ".gitignore":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def lock_without_measured(root: Path) -> dict:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for key in ("deps", "outs"):
            for entry in stage.get(key, []):
                if "measured" in entry["path"].split("/"):
                    entry.update(md5="(measured)", size=0)
    return lock


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two independent fresh workspaces: one built by `nasforge pipeline` (Snakemake), one by `dvc repro`."""
    snake = workspace(tmp_path_factory.mktemp("snakemake"))
    result = run(["nasforge", "pipeline"], snake)
    assert f"release: {RELEASE}" in result.stdout and "dvc.lock records this build" in result.stdout
    dvc = workspace(tmp_path_factory.mktemp("dvc"))
    run(["dvc", "repro"], dvc)
    return snake, dvc


def test_release_is_validated_and_verifies(built):
    for root in built:
        run(["nasforge", "release", "verify", RELEASE], root)
        manifest = yaml.safe_load((root / RELEASE / "manifest.json").read_text())
        name = Path(RELEASE).name  # the folder, the manifest and the data card name one release
        assert manifest["name"] == name and (root / RELEASE / "DATACARD.md").read_text().startswith(f"# {name}\n")
        assert manifest["files"]["tables/archs.parquet"]["rows"] == 2
        assert manifest["files"]["search/proxies.parquet"]["rows"] == 2
        assert {"search/trajectories.parquet", "search/summary.md", "figures/proxy_correlation.png"} <= set(manifest["files"])
        assert manifest["files"]["oneshot/results.parquet"]["rows"] == 1  # one search of one epoch
        assert manifest["files"]["oneshot/added_epochs.parquet"]["rows"] == 1  # its arch, trained 1 epoch, 1 seed
        assert (root / "results/validate/tss/summary.json").is_file()


def test_snakemake_and_dvc_builds_are_byte_identical(built):
    snake, dvc = built
    a, b = deterministic_files(snake), deterministic_files(dvc)
    assert any(k.startswith(RELEASE) for k in a) and any(k.endswith(".png") for k in a)
    assert a == b


def test_nothing_is_stale_after_either_build(built):
    for root in built:
        assert "Data and pipelines are up to date." in run(["dvc", "status", "dvc.yaml"], root).stdout


def test_the_pipeline_records_its_build_in_dvc_lock_and_publishes_it(built, tmp_path):
    """`nasforge pipeline` leaves the dvc.lock a fresh `dvc repro` writes (two independent builds: the same
    hashes, measured seconds aside), so `release publish` runs right after it, with no second build."""
    snake, dvc = built
    assert lock_without_measured(snake) == lock_without_measured(dvc)
    git = ["git", "-c", "user.email=ci@nasforge", "-c", "user.name=ci"]
    run([*git, "add", "-A"], snake)
    run([*git, "commit", "-qm", "the build's dvc.lock"], snake)
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "store")], snake)
    out = run(["nasforge", "release", "publish", RELEASE, "--remote", "store"], snake).stdout
    assert "published nasforge-tss-v0.0.1: tag nasforge-tss-v0.0.1" in out, out
    assert "Data and pipelines are up to date." in run(["dvc", "status", "dvc.yaml"], snake).stdout


def test_changing_a_training_param_reruns_train_onward_only(built):
    _, dvc = built
    params = yaml.safe_load((dvc / "params.yaml").read_text())
    params["train"]["latency_repeats"] = 2
    (dvc / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], dvc).stdout
    assert "Stage 'data' didn't change, skipping" in out and "Stage 'plan' didn't change, skipping" in out
    assert "Running stage 'train'" in out and "Running stage 'release'" in out


def test_a_corrupted_shard_blocks_the_release_and_bad_params_are_named(tmp_path):
    root = workspace(tmp_path)
    bad = dict(TINY, space="nb101")
    (root / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = run(["nasforge", "pipeline", "--params", "bad.yaml"], root, check=False)
    assert result.returncode == 2 and "space: 'nb101' is not allowed; allowed values are ['tss', 'sss']" in result.stderr
    result = run(["snakemake", "--profile", "workflow/profiles/default", "--configfile", "bad.yaml", "-n"], root, check=False)
    assert result.returncode != 0 and "allowed values are ['tss', 'sss']" in result.stdout + result.stderr

    run(["nasforge", "pipeline", "phase_train"], root)
    shard = root / "results/train/tss/mnist5k/hp01/seed777/shard0.parquet"
    original, checksum, meta = shard.read_bytes(), Path(f"{shard}.sha256").read_bytes(), read_metadata(shard)
    table = pl.read_parquet(shard)
    table.with_columns(test_acc=pl.col("test_acc") + 100).write_parquet(shard)  # edited by hand: bytes change
    result = run(["nasforge", "pipeline"], root, check=False)
    assert result.returncode != 0 and not (root / RELEASE).exists()
    assert "shard0.parquet: its bytes do not match shard0.parquet.sha256" in (
        root / "results/logs/aggregate/tss.log").read_text()
    write_table(table.with_columns(test_acc=pl.col("test_acc") + 100), shard, KEYS, meta)  # a trainer's wrong accuracy
    result = run(["nasforge", "pipeline"], root, check=False)
    assert result.returncode != 0
    assert not (root / RELEASE).exists() and not (root / "results/validate/tss/summary.json").exists()
    assert '"success": false' in (root / "results/validate/tss/validation.json").read_text()

    shard.write_bytes(original)
    Path(f"{shard}.sha256").write_bytes(checksum)
    run(["nasforge", "pipeline", "--forcerun", "aggregate"], root)
    run(["nasforge", "release", "verify", RELEASE], root)
    (root / RELEASE / "DATACARD.md").write_text("edited")
    result = run(["nasforge", "release", "verify", RELEASE], root, check=False)
    assert result.returncode == 1 and "DATACARD.md: sha256 differs" in result.stderr


@pytest.mark.timeout(3600)
def test_the_embedded_build_gives_the_golden_bytes(tmp_path):
    """params.yaml as committed, rebuilt from a fresh copy: every deterministic file has the sha256
    in tests/golden/embedded.sha256, on whatever CPU runs this (the kernels' instruction set is pinned)."""
    from golden.update import GOLDEN, digests, read

    root = workspace(tmp_path, yaml.safe_load((ROOT / "params.yaml").read_text()))
    run(["nasforge", "pipeline"], root, timeout=3000)
    expected, actual = read(), digests(root / "results")
    if actual != expected:
        changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
        report = (f"missing: {sorted(expected.keys() - actual.keys())}\nunexpected: "
                  f"{sorted(actual.keys() - expected.keys())}\nchanged ({len(changed)}): {changed}")
        raise AssertionError(f"the embedded build differs from {GOLDEN.name}; if numbers moved on purpose, "
                             f"update it in the same commit (python tests/golden/update.py results):\n{report}")
    # Audited by re-training: two archs of the embedded release, every seed, give its rows byte for byte.
    release = next((root / "results/release").iterdir())
    result = run(["nasforge", "audit", str(release), "--sample", "2", "--out", str(tmp_path / "audit")], root)
    assert ": reproduced (identical 4)" in result.stdout, result.stdout


def test_the_full_config_replaces_the_embedded_one_and_trains_at_nats_protocol():
    """`--configfile params-nats.yaml` must not inherit params.yaml's batch 128: every one of the
    6,144 train jobs carries an empty override, i.e. NATS-Bench's hyper-opts file of its budget."""
    result = run([sys.executable, "-m", "snakemake", "-n", "-p", "--profile", "workflow/profiles/default",
                  "--configfile", "params-nats.yaml"], ROOT)
    jobs = [line for line in result.stdout.splitlines() if "nasforge train-shard" in line]
    assert len(jobs) == 4 * 2 * 3 * 256
    assert all("--protocol-json '{}'" in job for job in jobs)
    assert {job.split("--hp ")[1].split()[0] for job in jobs} == {"12", "200"}
    embedded = run([sys.executable, "-m", "snakemake", "-n", "-p", "--profile", "workflow/profiles/default",
                    "--forcerun", "train"], ROOT)
    assert "--protocol-json '{\"batch_size\": 128}'" in embedded.stdout


def test_check_params_prints_the_effective_protocol():
    out = run(["nasforge", "check-params", "params-nats.yaml"], ROOT).stdout
    effective = yaml.safe_load(out.split("\n", 1)[1])
    assert effective["train"]["protocol"] == {}
    for hp, epochs in (("12", 12), ("200", 200)):
        assert effective["effective_protocol"][hp] == {"lr": 0.1, "eta_min": 0.0, "warmup": 0, "momentum": 0.9,
                                                       "nesterov": True, "weight_decay": 0.0005, "batch_size": 256,
                                                       "epochs": epochs}
    embedded = yaml.safe_load(run(["nasforge", "check-params"], ROOT).stdout.split("\n", 1)[1])
    assert embedded["effective_protocol"]["01"]["batch_size"] == 128
