"""Hostile and corrupt input, case by case: each gets a clear error before anything is read
wrongly or written, never a traceback, a hang, code execution or numbers served."""

import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from helpers import fabricate, phases
from nasforge.api import Benchmark, QueryError, create
from nasforge.cli import app
from nasforge.config import ParamsError, check_params
from nasforge.data import SourceError, prepare
from nasforge.data.loader import load_prepared
from nasforge.files import IntegrityError
from nasforge.release import ReleaseError, verify
from nasforge.search import run_search
from nasforge.tables import read_metadata, write_table
from nasforge.validate import ValidationFailed

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A release built from fabricated shards, and the results folder it came from."""
    results = tmp_path_factory.mktemp("hostile") / "results"
    return results, phases.fabricated_release(results)


@pytest.fixture
def release(built, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(built[1], copy)
    return copy


def rehash(release: Path, rel: str) -> None:
    """Update the manifest entry of one file, as someone re-hashing a tampered release would."""
    measured = rel.startswith("measured/")
    manifest_path = release / ("measured/manifest.json" if measured else "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    key = rel.removeprefix("measured/") if measured else rel
    data = (release / rel).read_bytes()
    manifest["files"][key] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest))


def replace_table(release: Path, rel: str, frame: pl.DataFrame) -> None:
    frame.write_parquet(release / rel)
    rehash(release, rel)


def one_line_error(result, *needles: str) -> str:
    """The CLI failed with an error message (no traceback) that names every needle."""
    output = result.output
    assert result.exit_code in (1, 2), output
    assert ("Traceback" not in output and result.exception is None) or isinstance(result.exception, SystemExit), output
    for needle in needles:
        assert needle in output, f"{needle!r} not in {output!r}"
    return output


# --- 1. shell injection through params.yaml ---------------------------------------------------------

@pytest.mark.slow
def test_a_source_path_with_shell_syntax_reaches_nasforge_as_one_literal_argument(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for name in ("Snakefile", "workflow", "params.yaml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, work / name)
    marker = tmp_path / "PWNED"
    params = json.loads(json.dumps(phases.PARAMS))
    params.update(datasets=["cifar10"], sources={"cifar10": f"/nonexistent dir/x$(touch {marker})`touch {marker}`"})
    params["search"]["time_budget"] = {"cifar10": 100}
    (work / "inj.yaml").write_text(json.dumps(params))
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    result = subprocess.run([sys.executable, "-m", "nasforge.cli", "pipeline", "--params", "inj.yaml", "phase_data"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode != 0
    assert not marker.exists()
    log = (work / "results/logs/data/cifar10.log").read_text()
    assert f"/nonexistent dir/x$(touch {marker})`touch {marker}`: no cifar-10-python.tar.gz" in log


def test_a_source_path_with_control_characters_is_refused_by_the_schema():
    params = json.loads(json.dumps(phases.PARAMS)) | {"sources": {"cifar10": "/data/x\n; rm -rf ~"}}
    with pytest.raises(ParamsError, match="sources.cifar10"):
        check_params(params, phases.SCHEMA)


# --- 2. pickled sources: one read, a restricted unpickler --------------------------------------------

class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/nasforge-pickle-ran",))


def test_a_pickle_that_would_run_code_is_refused_even_with_a_matching_checksum(tmp_path):
    batches = {f"data_batch_{i}": {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]} for i in range(1, 6)}
    batches["test_batch"] = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": _RunsCode()}
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    checksums = {"cifar-10-python.tar.gz": "0" * 32}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        checksums[f"cifar-10-batches-py/{name}"] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    Path("/tmp/nasforge-pickle-ran").unlink(missing_ok=True)
    with pytest.raises(SourceError, match="refused global posix.system|refused global os.system"):
        prepare("cifar10", tmp_path / "out", folder, checksums)
    assert not Path("/tmp/nasforge-pickle-ran").exists()
    assert not (tmp_path / "out/cifar10").exists()


def test_the_checksum_and_the_unpickling_see_the_same_bytes(tmp_path, monkeypatch):
    """A file swapped after it was hashed is never parsed: the source is read exactly once."""
    (archive, checksums), _ = fabricate.cifar10(tmp_path / "src")
    reads = []
    real = Path.read_bytes

    def counting(self):
        reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    monkeypatch.setattr("builtins.open", _no_open(open, archive))
    prepare("cifar10", tmp_path / "out", archive, checksums)
    assert reads.count(archive) == 1


def _no_open(real_open, forbidden: Path):
    def guarded(file, *args, **kwargs):
        if Path(str(file)) == forbidden:
            raise AssertionError(f"{forbidden} opened a second time")
        return real_open(file, *args, **kwargs)
    return guarded


# --- 3. release verify and open trust no path --------------------------------------------------------

def test_manifest_paths_that_leave_the_release_are_refused(release, tmp_path):
    secret = release.parent / "secret.txt"
    secret.write_text("secret")
    for entry in ("../secret.txt", "/etc/passwd", "tables/../../secret.txt"):
        manifest = json.loads((release / "manifest.json").read_text())
        manifest["files"][entry] = {"sha256": hashlib.sha256(b"secret").hexdigest(), "bytes": 6}
        (release / "manifest.json").write_text(json.dumps(manifest))
        problems = verify(release)
        assert problems and all("leaves the release" in p for p in problems), problems
        result = runner.invoke(app, ["release", "verify", str(release)])
        one_line_error(result, "leaves the release")
        with pytest.raises(ReleaseError, match="leaves the release"):
            Benchmark.open(release)
        del manifest["files"][entry]
        (release / "manifest.json").write_text(json.dumps(manifest))
    assert verify(release) == []


@pytest.mark.parametrize("link", ["tables", "tables/archs.parquet", "figures/metrics.json"])
def test_links_in_a_release_are_refused_and_never_followed(release, tmp_path, link):
    outside = tmp_path / "outside"
    shutil.move(release / link, outside)
    os.symlink(outside, release / link)
    problems = verify(release)
    assert any("symbolic link" in p for p in problems), problems
    with pytest.raises(ReleaseError, match="symbolic link"):
        Benchmark.open(release)
    with pytest.raises(ReleaseError, match="symbolic link"):
        create(str(release), "tss")


@pytest.mark.slow
def test_a_fifo_in_a_release_never_blocks_a_reader(release):
    code = f"""
import os, sys
from pathlib import Path
release = Path({str(release)!r})
(release / "tables/archs.parquet").unlink()
os.mkfifo(release / "tables/archs.parquet")
from nasforge.release import verify
from nasforge.api import Benchmark
problems = verify(release)
assert any("not a regular file" in p for p in problems), problems
try:
    Benchmark.open(release)
except ValueError as err:
    assert "not a regular file" in str(err), err
else:
    sys.exit("opened")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_a_release_lacking_what_every_release_holds_does_not_verify(release):
    """Two imports racing for one folder once left a release without tables/ whose manifest, listing none, verified."""
    manifest = json.loads((release / "manifest.json").read_text())
    for rel in ("tables/archs.parquet", "tables/epochs.parquet", "validation/validation.json"):
        (release / rel).unlink()
        del manifest["files"][rel]
    (release / "manifest.json").write_text(json.dumps(manifest))
    problems = verify(release)
    assert [p.split(",")[0] for p in problems] == [
        "manifest.json: lists no tables/archs.parquet", "manifest.json: lists no tables/epochs.parquet",
        "manifest.json: lists no validation/validation.json"], problems
    manifest["source"] = {"layout": "nats-simple"}  # claiming to be an import: an import's tables are required
    (release / "manifest.json").write_text(json.dumps(manifest))
    assert any("lists no tables/source.json, which every imported release holds" in p for p in verify(release))


def test_a_huge_sparse_file_is_refused_by_its_size_before_any_hashing(release, monkeypatch):
    import nasforge.release.manifest as manifest_module

    victim = release / "tables" / "archs.parquet"
    victim.unlink()
    with open(victim, "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of holes: hashing it would take minutes
    hashed = []
    real = manifest_module.file_sha256
    monkeypatch.setattr(manifest_module, "file_sha256", lambda path: hashed.append(path) or real(path))
    problems = verify(release)
    changed = f"{victim}: sha256 differs from manifest.json (changed since release: {64 << 30} bytes where"
    assert any(p.startswith(changed) for p in problems), problems
    assert victim not in hashed and hashed  # the other files were hashed
    with pytest.raises(ReleaseError, match=rf"archs.parquet: sha256 differs .*: {64 << 30} bytes where"):
        Benchmark.open(release)  # once read all 64 GiB into memory to hash them


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"space": "tss"}', "no 'files' object"),
    ('{"files": {}}', "'space' is None"),
    ('{"space": "tss", "files": {"tables/archs.parquet": {"sha256": "x"}}}', "needs a 64-hex 'sha256'"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than any manifest"),  # once a RecursionError
    ('{"space": "tss", "files": {}, "params": [1]}', "'params' is a JSON list, expected an object"),
    ('{"space": "tss", "files": {}, "params": {"train": {"threads": "abc"}}}', "integer 'threads' of 1..1024"),
    ('{"space": "tss", "files": {}, "name": {"x": 1}}', "'name' is a JSON dict, expected a string"),
])
def test_malformed_manifests_get_one_line_errors(release, content, message):
    (release / "manifest.json").write_text(content)
    problems = verify(release)
    assert len(problems) == 1 and message in problems[0] and "\n" not in problems[0]
    one_line_error(runner.invoke(app, ["release", "verify", str(release)]), message)
    one_line_error(runner.invoke(app, ["query", str(release), "0"]), message)


# --- 4. hostile values are not served ----------------------------------------------------------------

def _archs(release):
    return pl.read_parquet(release / "tables/archs.parquet")


@pytest.mark.parametrize("tamper,message", [
    (lambda t: t.with_columns(test_acc_mean=pl.lit(float("nan"))), "non-finite test_acc but are not marked diverged"),
    (lambda t: t.with_columns(test_acc_mean=pl.lit(float("inf"))), "non-finite test_acc"),
    (lambda t: t.with_columns(test_acc_mean=pl.lit(-1.0)), "test_acc outside 0..100"),
    (lambda t: t.with_columns(valid_acc_seeds=pl.col("valid_acc_seeds").list.eval(pl.element() + 150)),
     "valid_acc outside 0..100"),
    (lambda t: pl.concat([t, t.head(1)]), "repeat a (dataset, hp, arch_index)"),
    (lambda t: t.with_columns(smuggled=pl.lit(1)), "unknown columns ['smuggled']"),
    (lambda t: t.drop("flops"), "missing columns ['flops']"),
    (lambda t: t.with_columns(flops=pl.lit(-5.0)), "flops that is not finite and >= 0"),
    (lambda t: t.with_columns(arch_index=pl.col("arch_index") + 99999), "arch index outside"),
])
def test_hostile_values_in_a_rehashed_release_are_refused(release, tamper, message):
    replace_table(release, "tables/archs.parquet", tamper(_archs(release)))
    assert verify(release) == []  # the manifest matches: integrity is not validity
    with pytest.raises(ReleaseError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace(".", r"\.")):
        Benchmark.open(release)
    one_line_error(runner.invoke(app, ["query", str(release), "0"]), "tables/archs.parquet")


def test_manifest_fields_nobody_hashes_neither_turn_checks_off_nor_change_answers(release):
    """Adding a ``source`` key once switched the value checks off (test accuracy -7 was served); ``space: sss``
    in a TSS release once answered SSS arch strings for TSS results."""
    manifest = json.loads((release / "manifest.json").read_text())
    (release / "manifest.json").write_text(json.dumps({**manifest, "space": "sss"}))
    with pytest.raises(ReleaseError, match="not the sss space's arch of that index"):
        Benchmark.open(release)
    (release / "manifest.json").write_text(json.dumps({**manifest, "source": {"layout": "nats-simple", "files": []}}))
    replace_table(release, "tables/archs.parquet", _archs(release).with_columns(test_acc_mean=pl.lit(-7.0)))
    with pytest.raises(ReleaseError, match=r"test_acc outside 0\.\.100"):
        Benchmark.open(release)


@pytest.mark.parametrize("protocol,message", [({"warmup": 10**9}, "warmup=1000000000 is not allowed"),
                                              ({"lr": -1}, "lr=-1 is not allowed"),
                                              ({"lr": 0.1, "dropout": 0.5}, "unknown protocol keys ['dropout']")])
def test_audit_and_diff_use_nothing_unverified_and_no_protocol_unchecked(release, tmp_path, protocol, message):
    """An edited protocols.json once reached training (audit) and was reported as a real change (diff); a
    re-hashed one with warmup 10**9, lr -1 or an unknown key reached training or gave a traceback."""
    from nasforge.publish.diff import diff_releases
    from nasforge.replicate import audit_release

    path = release / "tables/protocols.json"
    original = path.read_text()
    protocols = json.loads(original)
    hp = next(iter(protocols))
    path.write_text(json.dumps({**protocols, hp: {**protocols[hp], "protocol": protocol}}))
    for action in (lambda: audit_release(release, 1, tmp_path / "audit"), lambda: diff_releases(release, release)):
        with pytest.raises(ReleaseError, match=r"does not verify \(.*protocols\.json: "):
            action()
    rehash(release, "tables/protocols.json")
    with pytest.raises(ValueError, match=f"protocols.json: hp {hp}'s .*{re.escape(message)}"):
        audit_release(release, 1, tmp_path / "audit")
    assert not (tmp_path / "audit").exists() or not list((tmp_path / "audit").rglob("*.parquet"))


def test_a_truncated_table_is_a_clear_error(release):
    data = (release / "tables/archs.parquet").read_bytes()
    (release / "tables/archs.parquet").write_bytes(data[: len(data) // 2])
    rehash(release, "tables/archs.parquet")
    with pytest.raises(IntegrityError, match="not a readable parquet table"):
        Benchmark.open(release)


def test_a_truncated_per_epoch_table_is_one_line_for_every_reader(release):
    """A truncated but re-hashed epochs.parquet once gave polars' ComputeError from get_more_info(iepoch=...)
    and from BOHB, which scan it lazily."""
    data = (release / "tables/epochs.parquet").read_bytes()
    (release / "tables/epochs.parquet").write_bytes(data[: len(data) // 2])
    rehash(release, "tables/epochs.parquet")
    api = create(release, "tss", fast_mode=True, verbose=False)
    index = api.query_index_by_arch(Benchmark.open(release).archs["arch"][0])
    with pytest.raises(ReleaseError, match=r"epochs\.parquet: not a readable parquet table"):
        api.get_more_info(index, "mnist5k", iepoch=0, hp="12")
    with pytest.raises(ReleaseError, match=r"epochs\.parquet: not a readable parquet table"):
        run_search(Benchmark.open(release), "bohb", "mnist5k", "12", 1000.0, 1)
    one_line_error(runner.invoke(app, ["search", str(release), "--algo", "bohb", "--runs", "1"]), "epochs.parquet")


@pytest.mark.parametrize("seconds", [0.0, -3.0, float("nan"), float("inf")])
def test_measured_seconds_that_would_stall_a_search_are_refused(release, seconds):
    times = pl.read_parquet(release / "measured/arch_times.parquet")
    replace_table(release, "measured/arch_times.parquet", times.with_columns(train_seconds_per_epoch=pl.lit(seconds)))
    bench = Benchmark.open(release)
    with pytest.raises(ReleaseError, match="train_seconds_per_epoch that is not finite and positive"):
        run_search(bench, "random", "mnist5k", "12", 1000.0, 1)
    result = runner.invoke(app, ["search", str(release), "--algo", "random", "--runs", "1"])
    one_line_error(result, "train_seconds_per_epoch")


@pytest.mark.parametrize("budget", ["inf", "nan", "-1", "0", "1e15"])
def test_time_budgets_that_cannot_end_are_refused(release, budget):
    result = runner.invoke(app, ["search", str(release), "--algo", "random", "--runs", "1", "--time-budget", budget])
    one_line_error(result, "time budget")


@pytest.mark.parametrize("algo", ["random", "rea", "reinforce", "bohb", "local"])
def test_every_search_loop_is_bounded_by_evaluations(release, algo):
    """Near-zero simulated seconds (a tiny flops model) and a huge budget: the evaluation cap ends every run."""
    from nasforge.search import TimeModel

    bench = Benchmark.open(release)
    t = run_search(bench, algo, "mnist5k", "12", 1e12, 2, time_model=TimeModel("flops", 1e300), max_evaluations=50)
    assert t.group_by("run").len()["len"].max() <= 50


# --- 5. corrupted intermediates never reach a release ----------------------------------------------

def test_a_flipped_byte_in_a_shard_stops_aggregation(tmp_path):
    results = tmp_path / "results"
    fabricate.shard_tables(results, phases.PARAMS)
    shard = results / "train/tss/mnist5k/hp12/seed777/shard1.parquet"
    data = bytearray(shard.read_bytes())
    for position in (8, len(data) // 3, len(data) // 2, len(data) - 12):
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        shard.write_bytes(bytes(flipped))
        with pytest.raises(IntegrityError, match=r"shard1\.parquet: its bytes do not match shard1\.parquet\.sha256"):
            phases.run_aggregate(results)
    assert not (results / "aggregate").exists()


def test_a_flipped_pixel_in_a_prepared_dataset_is_refused(mnist_tiny, tmp_path):
    folder = tmp_path / "mnist5k"
    shutil.copytree(mnist_tiny / "mnist5k", folder)
    images = folder / "train_images.npy"
    data = bytearray(images.read_bytes())
    data[-1] ^= 1
    images.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="train_images.npy: its bytes do not match the sha256"):
        load_prepared(folder, "train")


@pytest.mark.parametrize("tamper,detail", [
    (lambda t: t.with_columns(test_acc_mean=pl.col("test_acc_mean") + 0.5), "test_acc_mean is not the mean"),
    (lambda t: t.with_columns(seeds=pl.col("seeds").list.eval(pl.element() + 1)), "seeds [778, 889]"),
    (lambda t: t.with_columns(diverged=pl.lit(True)), "diverged=True but epochs.parquet says False"),
    (lambda t: t.with_columns(valid_acc_seeds=pl.col("valid_acc_seeds").list.reverse()),
     "valid_acc_seeds differ from the final epochs"),
])
def test_validation_checks_archs_against_epochs(tmp_path, tamper, detail):
    results = tmp_path / "results"
    fabricate.shard_tables(results, phases.PARAMS)
    phases.run_aggregate(results)
    archs = results / "aggregate/tss/archs.parquet"
    write_table(tamper(pl.read_parquet(archs)), archs, ["dataset", "hp", "arch_index"])  # re-hashed: a producer bug
    with pytest.raises(ValidationFailed, match="consistency"):
        phases.run_validate(results)
    report = json.loads((results / "validate/tss/validation.json").read_text())
    failed = [x for x in report["suites"]["consistency"]["expectations"] if not x["success"]]
    assert failed and any(detail in u for u in failed[0]["unexpected"]), failed


def test_a_diverged_epoch_with_a_finite_accuracy_fails_validation(tmp_path):
    results = tmp_path / "results"
    fabricate.shard_tables(results, phases.PARAMS)
    shard = results / "train/tss/mnist5k/hp12/seed777/shard0.parquet"
    table = pl.read_parquet(shard)
    write_table(table.with_columns(diverged=pl.col("epoch") == 11), shard, ["space", "dataset", "hp", "seed",
                                                                            "arch_index", "epoch"],
                read_metadata(shard))
    phases.run_aggregate(results)
    with pytest.raises(ValidationFailed, match="consistency"):
        phases.run_validate(results)


# --- 6. recovery -------------------------------------------------------------------------------------

def test_a_second_job_on_the_same_shard_stops_at_once(tmp_path):
    import fcntl

    from nasforge.paths import Results
    from nasforge.train.shard import ShardJob, run_shard

    job = ShardJob.under(Results(str(tmp_path)), space="tss", dataset="mnist5k", hp="01", seed=777, of=4, archs=[0])
    parts = job.parts
    parts.mkdir(parents=True)
    fd = os.open(parts, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(ValueError, match="another train-shard job is training this shard now"):
            run_shard(job)
    finally:
        os.close(fd)


def test_a_failed_run_that_trained_nothing_does_not_block_the_corrected_one(tmp_path):
    from nasforge.train.shard import _claim_parts

    parts = tmp_path / "shard0.parts"
    parts.mkdir()
    (parts / "job.json").write_text(json.dumps({"protocol": {"batch_size": 0}}))
    _claim_parts(parts, {"protocol": {"batch_size": 128}})
    assert json.loads((parts / "job.json").read_text()) == {"protocol": {"batch_size": 128}}
    (parts / "3.metrics.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match="holds archs trained with other settings"):
        _claim_parts(parts, {"protocol": {"batch_size": 64}})


@pytest.mark.slow
def test_a_killed_pipeline_resumes_and_keeps_finished_shards(tmp_path):
    """Kill Snakemake (not its jobs) mid-training: the rerun must unlock, keep the shards that
    finished meanwhile, and not retrain them."""
    import signal
    import time

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    shutil.copytree(ROOT / "workflow", work / "workflow")
    params = json.loads(json.dumps(phases.PARAMS))
    params["plan"] = {"archs": 4, "sample_seed": 0, "shards": 2}
    params["train"] = {"budgets": ["01"], "seeds": [777], "protocol": {"batch_size": 512}}
    (work / "params.yaml").write_text(json.dumps(params))
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    cmd = [sys.executable, "-m", "nasforge.cli", "pipeline", "--cores", "2", "phase_train"]
    first = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = list(work.glob("results/train/tss/mnist5k/hp01/seed777/shard*.parts"))
    deadline = time.time() + 600
    while len(parts) < 2 and time.time() < deadline:  # both train jobs have started
        time.sleep(0.5)
        parts = list(work.glob("results/train/tss/mnist5k/hp01/seed777/shard*.parts"))
    from nasforge.recovery import snakemake_running_in

    for pid in snakemake_running_in(work):
        os.kill(pid, signal.SIGKILL)
    first.kill()
    first.wait(timeout=60)
    while any(p.exists() for p in parts) and time.time() < deadline:  # the orphaned jobs finish
        time.sleep(0.5)
    shards = sorted(work.glob("results/train/tss/mnist5k/hp01/seed777/shard*.parquet"))
    assert len(shards) == 2 and (work / ".snakemake/locks").is_dir() and any((work / ".snakemake/locks").iterdir())
    before = {p: p.stat().st_mtime_ns for p in shards}
    second = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "unlocking" in second.stdout and "keeping 2 train shard(s)" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in shards} == before  # not retrained


# --- 7. bad CLI input: one line naming the value, before anything is written -----------------------

@pytest.mark.parametrize("args,needle", [
    (["--device", "foo"], "--device 'foo'"),
    (["--latency-repeats", "-1"], "--latency-repeats"),
    (["--protocol-json", '{"batch_size": 0}'], "protocol batch_size=0"),
    (["--protocol-json", '{"lr": "abc"}'], "protocol lr='abc'"),
    (["--protocol-json", "{bad"], "--protocol-json: not valid JSON"),
    (["--seed", str(2**64)], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--hp", "07"], "hp '07' has no NATS-Bench hyper-opts"),
    (["--hp", "1"], "hp '1' has no NATS-Bench hyper-opts"),
    (["--dataset", "../../x"], "--dataset '../../x'"),
])
def test_bad_train_shard_options(tmp_path, args, needle):
    base = {"--space": "tss", "--dataset": "mnist5k", "--hp": "01", "--seed": "777", "--archs": "0",
            "--data": str(tmp_path / "data"), "--results": str(tmp_path / "train")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = runner.invoke(app, ["train-shard", *[x for kv in base.items() for x in kv]])
    one_line_error(result, needle)
    assert not (tmp_path / "train").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("args,needle", [
    (["aggregate", "--params-json", "{bad"], "--params-json: not valid JSON"),
    (["aggregate", "--params-json", "[1]"], "expected a JSON object"),
    (["aggregate", "--params-json", '{"space": "tss"}', "--results", "/nonexistent"], "--results /nonexistent"),
    (["release", "build", "--params-json", json.dumps(phases.PARAMS | {"release": {"name": "../../x", "version": "0.1.0"}})],
     "release.name"),
    (["space", "tss", "0", "--num-classes", "0"], "--num-classes"),
])
def test_bad_step_options(tmp_path, args, needle):
    one_line_error(runner.invoke(app, args), needle)


@pytest.mark.parametrize("args,needle", [(["--runs", "0"], "--runs"), (["--runs", "-1"], "--runs"),
                                         (["--time-budget", "-1"], "time budget"), (["--first-seed", "-1"], "--first-seed"),
                                         # nan/inf once ran and answered; '²'.isdigit() is true and int('²') fails
                                         (["--time-model", "flops", "--gflops", "nan"], "gflops=nan"),
                                         (["--time-model", "flops", "--gflops", "inf"], "gflops=inf"),
                                         (["--hp", "²"], "'²'")])
def test_bad_search_options(release, args, needle):
    one_line_error(runner.invoke(app, ["search", str(release), *args]), needle)


@pytest.mark.parametrize("args,needle", [(["query", "1462", "--hp", "²"], "'²'"),
                                         (["audit", "--seed", "-1"], "--seed")])
def test_bad_query_and_audit_options(release, args, needle):
    command, *rest = args
    one_line_error(runner.invoke(app, [command, str(release), *rest]), needle)


@pytest.mark.parametrize("change,needle", [
    (lambda p: p["plan"].update(archs=1), "plan.archs: 1 cannot hold the 2 archs of plan.include"),
    (lambda p: p["plan"].update(shards=9), "plan.shards: 9 shards for 8 archs"),
    (lambda p: p["plan"].update(include=["|bad~0|"]), "plan.include.0: '|bad~0|' is not an arch"),
    (lambda p: p["train"].update(budgets=["00"]), "train.budgets.0: '00' is not allowed"),
    (lambda p: p["train"].update(seeds=[2**64]), "train.seeds.0"),
])
def test_check_params_refuses_plans_that_cannot_be_built(tmp_path, change, needle):
    params = json.loads(json.dumps(phases.PARAMS))
    change(params)
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(params))
    one_line_error(runner.invoke(app, ["check-params", str(path)]), needle)


def test_a_full_disk_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    import errno

    from nasforge import cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "plan.parquet"))

    monkeypatch.setattr("nasforge.tables.write_checked", full)
    monkeypatch.setattr(sys, "argv", ["nasforge", "plan", "--params", str(ROOT / "params.yaml"),
                                      "--out", str(tmp_path / "plan.parquet")])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "plan.parquet" in err and "Traceback" not in err


def test_nan_never_wins_find_best(release):
    """The first arch a search meets, marked diverged with NaN accuracies (as a run that blew up is stored),
    must not win: NATS-Bench's loop keeps a NaN first arch as its best (no comparison beats NaN), and NaN
    sorts above every number, so a find_best that forgot either would return it."""
    archs = _archs(release)
    setting = (pl.col("dataset") == "mnist5k") & (pl.col("hp") == "12")
    first = archs.filter(setting)["arch_index"].min()
    rest = archs.filter(setting & (pl.col("arch_index") != first)).sort(
        ["test_acc_mean", "arch_index"], descending=[True, False]).row(0, named=True)
    hit = setting & (pl.col("arch_index") == first)
    nan = float("nan")
    replace_table(release, "tables/archs.parquet", archs.with_columns(
        pl.when(hit).then(pl.lit(nan)).otherwise(pl.col("test_acc_mean")).alias("test_acc_mean"),
        pl.when(hit).then(pl.col("test_acc_seeds").list.eval(pl.element() * nan)).otherwise(
            pl.col("test_acc_seeds")).alias("test_acc_seeds"),
        pl.when(hit).then(pl.lit(True)).otherwise(pl.col("diverged")).alias("diverged")))
    api = create(str(release), "tss")
    assert api.find_best("mnist5k", "test", hp="12") == (rest["arch_index"], rest["test_acc_mean"])
    assert Benchmark.open(release).best("mnist5k", "12") == (rest["arch_index"], rest["test_acc_mean"])
    with pytest.raises(QueryError):
        api.find_best("mnist5k", "test", hp="07")
