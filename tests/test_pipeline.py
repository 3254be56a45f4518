"""The whole pipeline on a tiny configuration, through Snakemake and through DVC.

Slow (minutes): real training of two archs on mnist5k in fresh copies of the
repository. Deselect with -m "not slow" for a quick local run.
"""

import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from helpers.pipeline import RELEASE, ROOT, TINY, deterministic_files, lock_without_measured, run, workspace
from nasforge.schema import SHARD_KEYS as KEYS
from nasforge.tables import read_metadata, write_table

pytestmark = pytest.mark.slow


@pytest.fixture
def built(tiny_builds):
    """The session's two builds of the tiny configuration (conftest.py): (Snakemake's, DVC's)."""
    return tiny_builds


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


def test_the_tamperings_refused_on_fabricated_releases_are_refused_on_a_built_one(built, tmp_path):
    from helpers.tamper import run_battery

    run_battery(built[0] / RELEASE, tmp_path)


def test_a_build_that_saves_weights_serves_them_and_they_give_its_accuracy(built):
    """train.save_weights (on in the tiny configuration): each run's trained weights travel shard ->
    aggregate -> release, `get_net_param` serves them, and evaluated again they give the test accuracy
    the release recorded, to the image."""
    import torch

    from nasforge.api import create
    from nasforge.train import environment
    from nasforge.train.reference import evaluate, make_network
    from nasforge.train.splits import load_splits

    snake, _ = built
    api = create(snake / RELEASE, "tss", verbose=False)
    splits = load_splits(snake / "results/data/mnist5k", torch.device("cpu"))
    threads = torch.get_num_threads()
    environment.pin(1)  # as the train job evaluated
    try:
        for index in sorted(api.evaluated_indexes):
            state = api.get_net_param(index, "mnist5k", 777, "01")
            net = make_network("tss", index, 0, splits, torch.device("cpu"))  # other initial weights, replaced
            net.load_state_dict(state)
            _, correct, n = evaluate(net, *splits.evals["test"], splits, 256)
            recorded = api.get_more_info(index, "mnist5k", hp="01", is_random=777)["test-accuracy"]
            assert 100.0 * correct / n == recorded, (index, correct, n, recorded)
    finally:
        torch.set_num_threads(threads)
    manifest = yaml.safe_load((snake / RELEASE / "manifest.json").read_text())
    assert manifest["files"]["tables/weights.parquet"]["rows"] == 2
    assert sum(f.startswith("weights/") for f in manifest["files"]) == 2


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


def test_changing_a_training_param_reruns_the_stages_that_read_it(built):
    """DVC's dry run names the stages a param change reruns directly (the later ones follow from their
    inputs): a training param reruns train and oneshot (which trains under it), never data or plan."""
    _, dvc = built
    before = (dvc / "params.yaml").read_text()
    params = yaml.safe_load(before)
    params["train"]["latency_repeats"] = 2
    (dvc / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run(["dvc", "repro", "--dry"], dvc).stdout
    finally:
        (dvc / "params.yaml").write_text(before)
    assert "Stage 'data' didn't change, skipping" in out and "Stage 'plan' didn't change, skipping" in out
    assert "Running stage 'train'" in out and "Running stage 'oneshot'" in out
    assert "Stage 'aggregate' didn't change, skipping" in out  # its inputs change only once train has run


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
    # Audited by re-training: an arch of the embedded release, every seed, gives its rows byte for byte.
    release = next((root / "results/release").iterdir())
    result = run(["nasforge", "audit", str(release), "--sample", "1", "--out", str(tmp_path / "audit")], root)
    assert ": reproduced (identical 2)" in result.stdout, result.stdout


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
