import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from helpers.archs import ALL_CONV, ALL_NONE
from nasforge.paths import Results
from nasforge.protocol import Protocol
from nasforge.schema import epochs_of
from nasforge.spaces import get_space
from nasforge.tables import read_metadata, write_table
from nasforge.train import loop, reference
from nasforge.train.shard import ShardJob, run_shard, shard_archs
from nasforge.train.splits import Splits

TSS = get_space("tss")
CONV, NONE = TSS.index(ALL_CONV), TSS.index(ALL_NONE)
LIGHT = 0  # avg_pool / 1x1 / skip cell
SMALL_BATCH = Protocol.nats("12").with_overrides({"batch_size": 64})


def job(data, out, archs, hp="01", seed=777, shard=0, of=1, **kw) -> ShardJob:
    kw.setdefault("protocol", SMALL_BATCH)
    return ShardJob.under(Results(str(out)), space="tss", dataset="mnist5k", hp=hp, seed=seed, shard=shard, of=of,
                          data=Path(data) / "mnist5k", archs=archs, device="cpu", threads=1, latency_repeats=1, **kw)


def test_protocol_defaults_are_nats_bench_files():
    p = Protocol.nats("200")
    assert (p.lr, p.eta_min, p.momentum, p.nesterov, p.weight_decay, p.batch_size, p.warmup) == (
        0.1, 0.0, 0.9, True, 5e-4, 256, 0)
    assert Protocol.nats("01") == Protocol.nats("12") == Protocol.nats("90") == p
    assert p.lr_at(0, 0.0, 12) == 0.1 and p.lr_at(6, 0.0, 12) == pytest.approx(0.05)
    # Per-epoch annealing, as xautodl's scheduler: the lr is constant within an epoch (test_nats_fidelity
    # checks every iteration against xautodl itself), and the last epoch is above eta_min.
    assert p.lr_at(0, 0.5, 12) == p.lr_at(0, 0.0, 12) and p.lr_at(11, 0.99, 12) > 0.0
    assert p.total_epochs("12") == 12 and p.with_overrides({"warmup": 2}).total_epochs("12") == 14
    assert epochs_of("01") == 1 and epochs_of("200") == 200
    for bad in ("0", "twelve", "-1"):
        with pytest.raises(ValueError, match="budget hp"):
            epochs_of(bad)
    with pytest.raises(ValueError, match="unknown protocol keys"):
        p.with_overrides({"learning_rate": 0.2})


@pytest.fixture(scope="module")
def trained(mnist_small, tmp_path_factory):
    shard = job(mnist_small, tmp_path_factory.mktemp("train"), [CONV, NONE, LIGHT], hp="03")
    run_shard(shard)
    return shard


def test_shard_table_schema_sorting_and_environment(trained):
    table = pl.read_parquet(trained.out)
    assert table.columns == [
        "space", "arch_index", "arch", "dataset", "hp", "seed", "epoch", "lr", "train_loss", "train_acc",
        "valid_loss", "valid_acc", "test_loss", "test_acc", "valtest_loss", "valtest_acc", "diverged"]
    assert table.height == 3 * 3
    assert table.equals(table.sort("arch_index", "epoch"))
    assert table["hp"].unique().to_list() == ["03"] and table["epoch"].to_list()[:3] == [0, 1, 2]
    assert not table["diverged"].any()
    # mnist5k has no ori-test halves: valtest is empty, everything else filled
    assert table.drop("valtest_loss", "valtest_acc").null_count().sum_horizontal().item() == 0
    assert table["valtest_acc"].null_count() == table.height
    # lr: constant per epoch, NATS-Bench's cosine over 3 epochs
    assert table.filter(pl.col("arch_index") == LIGHT)["lr"].to_list() == pytest.approx([0.1, 0.075, 0.025])
    env = read_metadata(trained.out)["environment"]
    assert {"torch", "cuda", "cudnn", "device", "driver", "threads"} <= set(env) and env["threads"] == "1"
    # Nothing of the host in a deterministic table: any x86-64 CPU writes these bytes.
    assert env["device"] == "cpu" and env["numerics.cpu_isa"] == "avx2" and env["numerics.MKL_CBWR"] == "COMPATIBLE"
    assert read_metadata(trained.timing_out)["host"]["cpu"]
    timing = pl.read_parquet(trained.timing_out)
    assert trained.timing_out.parent == Path(str(trained.out).replace("/train/", "/measured/train/")).parent
    assert timing.height == 9 and (timing["train_seconds"] > 0).all()
    cost = pl.read_parquet(trained.cost_out)
    assert sorted(cost["arch_index"].to_list()) == sorted([CONV, NONE, LIGHT])
    conv = cost.filter(pl.col("arch_index") == CONV)
    assert conv["params"].item() == pytest.approx(1.531546 - 2 * 16 * 9 / 1e6)  # 1 input channel, not 3
    assert (cost["latency_bs1_ms"] > 0).all() and (cost["latency_bs256_ms"] > cost["latency_bs1_ms"]).all()
    assert not trained.parts.exists()


def test_conv_beats_chance_and_the_empty_cell_stays_at_chance(trained):
    final = pl.read_parquet(trained.out).filter(pl.col("epoch") == 2)
    acc = dict(zip(final["arch_index"], final["valid_acc"], strict=True))
    # Chance is 10% (sd about 3 points on 100 balanced images); 20% is far above it.
    assert acc[CONV] > 20 and acc[LIGHT] > 20
    # The all-none cell's output does not depend on the image: one class for all, 10% of a balanced split.
    assert acc[NONE] == 10.0
    assert final.filter(pl.col("arch_index") == NONE)["test_acc"].item() == 10.0


def test_rerun_is_byte_identical(mnist_tiny, tmp_path):
    a = run_shard(job(mnist_tiny, tmp_path / "a", [LIGHT, NONE]))
    b = run_shard(job(mnist_tiny, tmp_path / "b", [LIGHT, NONE]))
    assert a.read_bytes() == b.read_bytes()
    first = a.read_bytes()
    assert run_shard(job(mnist_tiny, tmp_path / "a", [LIGHT, NONE])).read_bytes() == first


def test_rows_do_not_depend_on_shard_or_position(mnist_tiny, tmp_path):
    a = pl.read_parquet(run_shard(job(mnist_tiny, tmp_path, [LIGHT, 9], shard=0, of=2)))
    b = pl.read_parquet(run_shard(job(mnist_tiny, tmp_path, [5, LIGHT], shard=1, of=2)))
    rows_a = a.filter(pl.col("arch_index") == LIGHT)
    rows_b = b.filter(pl.col("arch_index") == LIGHT)
    assert rows_a.height == 1 and rows_a.equals(rows_b)
    assert not a.filter(pl.col("arch_index") == 9).equals(b.filter(pl.col("arch_index") == 5))


def test_different_seeds_differ(mnist_tiny, tmp_path):
    a = pl.read_parquet(run_shard(job(mnist_tiny, tmp_path, [LIGHT], seed=777)))
    b = pl.read_parquet(run_shard(job(mnist_tiny, tmp_path, [LIGHT], seed=888)))
    assert a["train_loss"].item() != b["train_loss"].item()


@pytest.mark.slow
def test_killed_job_resumes_to_the_same_table(mnist_tiny, tmp_path):
    archs = "0,5,9,11,14,20"
    cmd = [sys.executable, "-m", "nasforge.cli", "train-shard", "--space", "tss", "--dataset", "mnist5k",
           "--hp", "01", "--seed", "777", "--archs", archs, "--data", str(mnist_tiny / "mnist5k"), "--device", "cpu",
           "--latency-repeats", "1"]
    reference_out = tmp_path / "whole"
    subprocess.run([*cmd, "--results", str(reference_out)], check=True, capture_output=True, timeout=600)

    out = tmp_path / "killed"
    parts = out / "train/tss/mnist5k/hp01/seed777/shard0.parts"
    proc = subprocess.Popen([*cmd, "--results", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*.metrics.parquet"))) < 2:
        assert proc.poll() is None, "the job finished before it could be killed; give it more work"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done_before = {p.name for p in parts.glob("*.metrics.parquet")}
    assert 2 <= len(done_before) < 6 and not (out / "train/tss/mnist5k/hp01/seed777/shard0.parquet").exists()
    assert not list(parts.glob(".*.tmp"))  # no half-written part is visible under a final name

    result = subprocess.run([*cmd, "--results", str(out)], check=True, capture_output=True, text=True, timeout=600)
    assert "wrote" in result.stdout
    resumed = out / "train/tss/mnist5k/hp01/seed777/shard0.parquet"
    whole = reference_out / "train/tss/mnist5k/hp01/seed777/shard0.parquet"
    table = pl.read_parquet(resumed)
    assert table.height == 6 and table.select("arch_index", "epoch").is_unique().all()
    assert resumed.read_bytes() == whole.read_bytes()


def test_resume_refuses_other_settings(mnist_tiny, tmp_path):
    parts = job(mnist_tiny, tmp_path, [LIGHT]).parts
    parts.mkdir(parents=True)
    (parts / "job.json").write_text('{"seed": 1}')
    (parts / "5.metrics.parquet").write_bytes(b"")  # an arch trained under those settings
    with pytest.raises(ValueError, match="other settings"):
        run_shard(job(mnist_tiny, tmp_path, [LIGHT]))
    assert (parts / "job.json").read_text() == '{"seed": 1}'


def test_nan_marks_the_arch_diverged_and_the_job_goes_on(mnist_tiny, tmp_path, monkeypatch):
    real = reference.build_network

    def poisoned(space, arch, num_classes, in_channels=3):
        net = real(space, arch, num_classes, in_channels)
        if arch == 9:
            calls = {"n": 0}

            def hook(module, inputs, output):
                calls["n"] += module.training
                return output * math.nan if calls["n"] > 5 else output  # NaN from the second epoch on

            net.classifier.register_forward_hook(hook)
        return net

    monkeypatch.setattr(reference, "build_network", poisoned)
    table = pl.read_parquet(run_shard(job(mnist_tiny, tmp_path, [9, LIGHT], hp="03")))
    bad = table.filter(pl.col("arch_index") == 9).sort("epoch")
    assert bad["diverged"].to_list() == [False, True, True]
    assert math.isfinite(bad["train_loss"][0]) and all(math.isnan(v) for v in bad["train_loss"][1:])
    assert all(math.isnan(v) for v in bad["test_acc"][1:])
    good = table.filter(pl.col("arch_index") == LIGHT)
    assert good.height == 3 and not good["diverged"].any()


def test_shard_selection(tmp_path):
    default = ShardJob.under(space="tss", dataset="mnist5k", hp="01", seed=777, shard=3, of=64)
    assert default.out == Path("results/train/tss/mnist5k/hp01/seed777/shard3.parquet")
    assert default.parts == Path("results/train/tss/mnist5k/hp01/seed777/shard3.parts")
    assert default.cost_out == Path("results/measured/train/tss/mnist5k/hp01/seed777/shard3.cost.parquet")

    def selection(space, shard, of, **kw):
        return ShardJob.under(space=space, dataset="x", hp="01", seed=1, shard=shard, of=of, **kw)

    assert shard_archs(selection("sss", 2, 4))[:3] == [2, 6, 10]
    plan = tmp_path / "plan.parquet"
    write_table(pl.DataFrame({"arch_index": [4, 1, 7, 3], "shard": [1, 0, 1, 0]}), plan, ["arch_index"])
    assert shard_archs(selection("tss", 1, 2, plan=plan)) == [4, 7]
    with pytest.raises(ValueError, match="--of 3"):
        shard_archs(selection("tss", 1, 3, plan=plan))
    with pytest.raises(ValueError, match="not in 0..1"):
        shard_archs(selection("tss", 2, 2))
    with pytest.raises(ValueError, match="TSS index"):
        shard_archs(selection("tss", 0, 1, archs=[99999]))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nasforge prepare"):
        run_shard(job(tmp_path / "nothing", tmp_path, [LIGHT]))


def test_init_and_data_depend_on_the_seed_only():
    """NATS-Bench's init: torch.manual_seed(seed) right before building, whatever ran before."""
    splits = Splits(train=(torch.zeros(1), torch.zeros(1)), evals={}, augmentation=None, num_classes=10,
                    in_channels=1, dataset="mnist5k")
    first = reference.make_network("tss", LIGHT, 777, splits, torch.device("cpu")).state_dict()
    torch.rand(1000)  # consume the global generator, as training another arch would
    again = reference.make_network("tss", LIGHT, 777, splits, torch.device("cpu")).state_dict()
    other = reference.make_network("tss", LIGHT, 888, splits, torch.device("cpu")).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    g1, g2 = loop.data_generator(777), loop.data_generator(777)
    assert torch.equal(torch.randperm(50, generator=g1), torch.randperm(50, generator=g2))
