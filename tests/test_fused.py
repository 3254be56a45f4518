"""The fused engine against the reference engine, on CPU: same arithmetic, same rows, same flags.

Why float64 for the multi-step check: NATS-Bench's networks at initialisation
amplify a rounding difference enormously (BN over near-constant channels
divides by sqrt(eps)). Perturbing one reference weight by one ulp moves its
fp32 loss by ~1e-3 within three SGD steps, so fp32 agreement after many steps
measures that conditioning, not the engine. In float64 the engines must agree
to ~1e-9 after several steps, which any real difference (a shared BN, a wrong
gradient scale, a missed weight decay) would break by orders of magnitude. In
fp32 they agree to 1e-4 over the first steps and on well-conditioned archs.
"""

import random

import polars as pl
import pytest
import torch
import torch.nn.functional as F

from helpers.archs import ALL_CONV, ALL_NONE
from nasforge.models.fused import fuse
from nasforge.models.networks import build_network
from nasforge.paths import Results
from nasforge.plan import group_memory_bytes, make_plan, pack_groups
from nasforge.protocol import Protocol
from nasforge.spaces import get_space
from nasforge.train import reference
from nasforge.train.fused import OutOfMemory, member_losses, train_group, train_split_on_oom
from nasforge.train.shard import ShardJob, run_shard
from nasforge.train.splits import load_splits

TSS, SSS = get_space("tss"), get_space("sss")
SMALL_BATCH = Protocol.nats("12").with_overrides({"batch_size": 64})
# fp32 agreement over whole epochs is checked at a gentler lr: at NATS-Bench's 0.1 for a whole first
# epoch these nets amplify rounding past 1e-4 within it, whichever engine runs (see the docstring). On the
# 16x16 digits even 0.05 amplifies arch 0's rounding to 5e-4 in two epochs; at 0.02 the engines agree to
# 5e-7 on these archs, 200 times inside the bound.
STEADY_PROTOCOL = SMALL_BATCH.with_overrides({"lr": 0.02})
NONE_HEAVY = "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"
TSS_GROUP = sorted({TSS.index(ALL_CONV), TSS.index(ALL_NONE), TSS.index(NONE_HEAVY),
                    *random.Random(4).sample(range(len(TSS)), 4)})
SSS_GROUP = sorted({0, *random.Random(5).sample(range(len(SSS)), 3)})
# Both members skip 0 -> 2 (so the node's first term is node 0 itself) and differ on 1 -> 2: the
# scatter of the second edge must not add into node 0 in place (a bug this pair caught).
SKIP_PAIR = sorted(TSS.index(f"|nor_conv_3x3~0|+|skip_connect~0|{op}~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|")
                   for op in ("nor_conv_3x3", "avg_pool_3x3"))
STEADY = [0, 9, TSS.index(ALL_NONE)]  # archs whose fp32 dynamics stay well-conditioned on these digits


@pytest.fixture(scope="module", autouse=True)
def pinned():
    from nasforge.train import environment

    environment.pin(1)


def _pair(space, group, in_channels=1, dtype=torch.float32):
    """Each member's reference network (its own init) and the fused network made from them."""
    nets = []
    for i in group:
        torch.manual_seed(i)
        nets.append(build_network(space, i, 10, in_channels))
    net = fuse(space, group, nets, 10, in_channels)
    return [n.to(dtype) for n in nets], net.to(dtype)


@pytest.mark.parametrize("space,group", [("tss", TSS_GROUP), ("tss", SKIP_PAIR), ("sss", SSS_GROUP)])
def test_fused_forward_is_the_members_forward(space, group):
    nets, net = _pair(space, group)
    x = torch.randn(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for mode in ("train", "eval"):
        for n in (*nets, net):
            n.train(mode == "train")
        expected = torch.stack([n(x)[1] for n in nets])
        assert torch.allclose(net(x), expected, rtol=0, atol=1e-5), mode


@pytest.mark.parametrize("space,group", [("tss", TSS_GROUP), ("tss", SKIP_PAIR), ("sss", SSS_GROUP)])
def test_fused_training_is_the_reference_arithmetic(space, group):
    nets, net = _pair(space, group, dtype=torch.float64)
    sgd = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    optimizers = [torch.optim.SGD(n.parameters(), **sgd) for n in nets]
    fused_optimizer = torch.optim.SGD(net.parameters(), **sgd)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x, y = torch.randn(8, 1, 32, 32, generator=g, dtype=torch.float64), torch.randint(0, 10, (8,), generator=g)
        losses = []
        for n, opt in zip(nets, optimizers, strict=True):
            loss = F.cross_entropy(n(x)[1], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        fused_losses = member_losses(net(x), y)
        fused_optimizer.zero_grad()
        fused_losses.sum().backward()
        fused_optimizer.step()
        assert fused_losses.tolist() == pytest.approx(losses, abs=1e-9)
    exported = [build_network(space, i, 10, 1).double() for i in group]
    net.export_to(exported)
    for a, b in zip(nets, exported, strict=True):
        # Ops feeding a dead-end node get no gradient, so PyTorch's SGD leaves them alone in the
        # reference while the stacked SGD decays them (and so their BN statistics drift); they never
        # reach an output. Everything else matches.
        dead = {name.rsplit(".", 1)[0] for name, p in a.named_parameters() if p.grad is None}
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            if "num_batches" not in name and name.rsplit(".", 1)[0] not in dead:
                assert torch.allclose(p, q, rtol=0, atol=1e-8), name


@pytest.fixture(scope="module")
def splits(mnist_tiny):
    return load_splits(mnist_tiny / "mnist5k", torch.device("cpu"))


def test_train_group_gives_the_reference_rows(splits):
    alone = [reference.train_arch("tss", i, 777, 2, STEADY_PROTOCOL, splits, torch.device("cpu")) for i in STEADY]
    together = train_group("tss", STEADY, 777, 2, STEADY_PROTOCOL, splits, torch.device("cpu"))
    for (ref_rows, _), (rows, timings) in zip(alone, together, strict=True):
        assert [r.keys() for r in rows] == [r.keys() for r in ref_rows] and len(timings) == 2
        for r, f in zip(ref_rows, rows, strict=True):
            for key in ("train_loss", "valid_loss", "test_loss"):
                assert f[key] == pytest.approx(r[key], abs=1e-4), key
            assert abs(f["test_acc"] - r["test_acc"]) <= 100 / 50  # at most one of 50 test digits flips
    again = train_group("tss", STEADY, 777, 2, STEADY_PROTOCOL, splits, torch.device("cpu"))
    assert [rows for rows, _ in again] == [rows for rows, _ in together]  # deterministic


def test_a_diverging_member_is_flagged_and_harms_no_other(splits, monkeypatch):
    poisoned = STEADY[1]
    make = reference.make_network

    def poison(space, arch_index, seed, splits, device):
        net = make(space, arch_index, seed, splits, device)
        if arch_index == poisoned:
            with torch.no_grad():
                net.classifier.weight.fill_(float("inf"))
        return net

    monkeypatch.setattr(reference, "make_network", poison)
    ref_rows, _ = reference.train_arch("tss", poisoned, 777, 2, SMALL_BATCH, splits, torch.device("cpu"))
    results = dict(zip(STEADY, train_group("tss", STEADY, 777, 2, SMALL_BATCH, splits, torch.device("cpu")),
                       strict=True))
    assert all(r["diverged"] for r in ref_rows)
    assert [r["diverged"] for r in results[poisoned][0]] == [True, True]
    monkeypatch.setattr(reference, "make_network", make)
    healthy = [i for i in STEADY if i != poisoned]
    clean = dict(zip(healthy, train_group("tss", healthy, 777, 2, SMALL_BATCH, splits, torch.device("cpu")),
                     strict=True))
    for i in healthy:
        for with_poison, without in zip(results[i][0], clean[i][0], strict=True):
            assert not with_poison["diverged"]
            assert with_poison["train_loss"] == pytest.approx(without["train_loss"], abs=1e-4)


def test_out_of_memory_splits_the_group_and_loses_nothing(splits):
    calls = []

    def fake(space, group, seed, epochs, protocol, splits, device, on_epoch):
        calls.append(list(group))
        if len(group) > 2:
            raise OutOfMemory("simulated: CUDA out of memory")
        return [([{"arch": i}], []) for i in group]

    group = [3, 5, 8, 13, 21]
    results = train_split_on_oom("tss", group, 777, 1, SMALL_BATCH, splits, torch.device("cpu"), train=fake)
    assert [rows[0]["arch"] for rows, _ in results] == group
    assert calls == [[3, 5, 8, 13, 21], [3, 5], [8, 13, 21], [8], [13, 21]]
    with pytest.raises(OutOfMemory):
        train_split_on_oom("tss", [3], 777, 1, SMALL_BATCH, splits, torch.device("cpu"),
                           train=lambda *a: (_ for _ in ()).throw(OutOfMemory("one arch too big")))


@pytest.mark.parametrize("space", ["tss", "sss"])
def test_groups_respect_the_memory_budget_and_size(space):
    sp = get_space(space)
    archs = sorted(random.Random(2).sample(range(len(sp)), 200))
    budget_gb = 20.0
    groups = pack_groups(space, archs, memory_gb=budget_gb, max_size=16, batch_size=256)
    assert sorted(i for g in groups for i in g) == archs
    for g in groups:
        assert len(g) <= 16
        assert len(g) == 1 or group_memory_bytes(space, [sp.arch(i) for i in g], 256) <= budget_gb * 2**30
    assert len(groups) < len(archs) / 2  # it does pack
    with pytest.raises(ValueError, match="memory_gb > 0"):
        pack_groups(space, archs, memory_gb=0)


def test_plan_carries_groups_within_shards():
    plan = make_plan("tss", 60, 3, sample_seed=1, groups={"memory_gb": 10.0, "max_size": 8})
    assert plan.equals(make_plan("tss", 60, 3, sample_seed=1, groups={"memory_gb": 10.0, "max_size": 8}))
    sizes = plan.group_by("shard", "group").len()["len"]
    assert sizes.max() <= 8 and sizes.sum() == 60


def test_fused_shard_job_writes_the_same_tables_twice(mnist_tiny, tmp_path):
    def job(out):
        return ShardJob.under(Results(str(out)), space="tss", dataset="mnist5k", hp="01", seed=777,
                              data=mnist_tiny / "mnist5k", archs=STEADY, device="cpu", threads=1,
                              protocol=SMALL_BATCH, latency_repeats=1, engine="fused")

    a, b = run_shard(job(tmp_path / "a")), run_shard(job(tmp_path / "b"))
    assert a.read_bytes() == b.read_bytes()
    assert pl.read_parquet(a)["arch_index"].unique().sort().to_list() == sorted(STEADY)
    with pytest.raises(ValueError, match="unknown engine 'turbo'"):
        run_shard(ShardJob.under(Results(str(tmp_path / "c")), space="tss", dataset="mnist5k", hp="01", seed=777,
                                 data=mnist_tiny / "mnist5k", archs=STEADY, engine="turbo"))


def test_member_losses_are_each_members_cross_entropy():
    logits = torch.randn(3, 5, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (5,), generator=torch.Generator().manual_seed(1))
    expected = torch.stack([F.cross_entropy(logits[g], labels) for g in range(3)])
    assert torch.allclose(member_losses(logits, labels), expected)
