"""The weight-sharing searches: supernets that are the networks they claim, the algorithms' sampling
and gradients checked against their definitions, and jobs that are deterministic and resume exactly."""

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from copy import deepcopy

import polars as pl
import pytest
import torch
from torch.nn import functional as F

from conftest import ALL_CONV, ALL_NONE
from nasforge.errors import InputError
from nasforge.models import cost
from nasforge.oneshot import search as search_module
from nasforge.oneshot.algorithms import Settings, make_search, unrolled_arch_gradient
from nasforge.oneshot.controller import Controller
from nasforge.oneshot.sss_supernet import CHANNELS, SizeSupernet, Width, widths_of
from nasforge.oneshot.sss_supernet import discrete_network as sss_discrete
from nasforge.oneshot.tss_supernet import NUM_EDGES, NUM_OPS, EdgeChoice, TopologySupernet
from nasforge.oneshot.tss_supernet import discrete_network as tss_discrete
from nasforge.paths import Results
from nasforge.spaces import get_space
from nasforge.spaces.tss import EDGES, OPS

TSS_ARCHS = [ALL_CONV, ALL_NONE, "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|",
             "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"]
SSS_ARCHS = ["64:64:64:64:64", "8:8:8:8:8", "8:16:24:32:64", "64:8:64:8:64", "24:24:40:40:16"]
TINY = Settings(channels=4, cells_per_stage=1, candidates=3, controller_steps=1, controller_aggregate=2)


def one_hot(arch: str) -> torch.Tensor:
    ops = get_space("tss").parse(arch)
    return F.one_hot(torch.tensor([OPS.index(op) for op in ops]), NUM_OPS).float()


@pytest.mark.parametrize("arch", TSS_ARCHS)
def test_tss_supernet_restricted_to_an_arch_is_that_network(arch):
    torch.manual_seed(0)
    supernet = TopologySupernet(10, 3, channels=4, cells_per_stage=2).double()
    net = tss_discrete(supernet, arch).double()
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    expected = net(x)[1]  # training mode: BN on batch statistics, as the supernet's search cells
    # the network's convs have no bias; the supernet's edge convs have xautodl's, which BN on batch
    # statistics cancels up to rounding
    path = supernet(x, EdgeChoice.arch(arch))[1]
    assert torch.allclose(path, expected, rtol=0, atol=1e-12)
    # DARTS' mixture with one-hot weights adds exact zeros: the same numbers
    assert torch.equal(supernet(x, EdgeChoice("mix", weights=one_hot(arch).double()))[1], path)
    soft = supernet(x, EdgeChoice("mix", weights=F.softmax(torch.randn(NUM_EDGES, NUM_OPS, dtype=torch.float64), -1)))[1]
    assert not torch.allclose(soft, expected)  # the comparison can fail


def test_tss_supernet_is_xautodls_search_model_name_for_name_and_computes_its_logits():
    """xautodl 1.0.0's ``GenericNAS201Model`` (search-cell.py's model, affine=False, track_running_stats=False):
    every parameter and buffer has its counterpart here with the same shape (its edge convs' biases included,
    which nasforge once left out), and with xautodl's weights loaded, DARTS' joint forward gives xautodl's
    logits in float64."""
    generic = pytest.importorskip("xautodl.models.cell_searchs.generic_model")
    torch.manual_seed(0)
    theirs = generic.GenericNAS201Model(8, 1, 4, 10, list(OPS), False, False)
    theirs.set_algo("darts-v1")
    theirs.set_cal_mode("joint")
    ours = TopologySupernet(10, 3, 8, 1)

    def our_name(name: str) -> str:
        parts = name.split(".")
        parts[0] = parts[0].removeprefix("_")  # _stem, _cells
        if parts[0] == "cells" and parts[2] == "edges":
            target, source = map(int, parts[3].split("<-"))
            parts[3] = str(EDGES.index((source, target)))
        return ".".join(parts)

    state = {our_name(k): v for k, v in theirs.state_dict().items() if k != "arch_parameters"}
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ours.load_state_dict(state)
    theirs.double().train()
    ours.double().train()
    alphas = torch.randn(NUM_EDGES, NUM_OPS, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs.arch_parameters.copy_(alphas)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = theirs(x)[1]
    got = ours(x, EdgeChoice("mix", weights=F.softmax(alphas, dim=-1)))[1]
    assert torch.allclose(got, expected, rtol=0, atol=1e-12), (got - expected).abs().max()


def test_tss_supernet_at_the_benchmark_skeleton_counts_its_networks_parameters():
    """Full size (C=16, N=5): the discrete network carved out of the supernet has exactly the cost model's
    parameter count (affine BN weights included), so the supernet holds the benchmark's network."""
    supernet = TopologySupernet(10, 3)
    for arch in TSS_ARCHS:
        net = tss_discrete(supernet, arch)
        assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(cost("tss", arch)["params"], abs=1e-12)


@pytest.mark.parametrize("arch", SSS_ARCHS)
def test_sss_supernet_masked_to_widths_is_that_network(arch):
    torch.manual_seed(1)
    supernet = SizeSupernet(10, 3)
    net = sss_discrete(supernet, arch)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(cost("sss", arch)["params"], abs=1e-12)
    x = torch.randn(4, 3, 16, 16)
    got = supernet(x, widths_of(arch))[1]
    # the widest convolutions sum extra exact zeros, in another order than the narrow ones: float rounding only
    torch.testing.assert_close(got, net(x)[1], rtol=1e-4, atol=1e-5)
    mixed = [Width("mix", (), F.one_hot(torch.tensor(CHANNELS.index(c)), len(CHANNELS)).float())
             for c in get_space("sss").parse(arch)]
    assert torch.equal(supernet(x, mixed)[1], got)  # a one-hot soft mask is the fixed width
    if arch != "64:64:64:64:64":
        assert not torch.allclose(supernet(x, widths_of("64:64:64:64:64"))[1], got, atol=1e-3)


def test_a_width_keeps_only_its_channels():
    supernet = SizeSupernet(10, 3)
    h = torch.randn(2, 64, 4, 4)
    for k, c in enumerate(CHANNELS):
        out = Width("one", (k,)).apply(h, supernet.masks)
        assert torch.equal(out[:, :c], h[:, :c]) and not out[:, c:].any()
    tas = Width("tas", (1, 4), torch.tensor([0.25, 0.75])).apply(h, supernet.masks)  # 16 and 40 channels
    assert not tas[:, 40:].any() and tas[:, :40].abs().sum() > 0
    # every channel of the interpolation is xautodl's ChannelWiseInter (search-size.py's TAS), for several pairs
    generic = pytest.importorskip("xautodl.models.shape_searchs.generic_size_tiny_cell_model")
    h = h.double()
    for k1, k2 in ((1, 4), (0, 7), (5, 2), (3, 3)):
        p = torch.tensor([0.3, 0.7], dtype=torch.float64)
        c1, c2 = CHANNELS[k1], CHANNELS[k2]
        c = max(c1, c2)
        expected = generic.ChannelWiseInter(h[:, :c1], c) * p[0] + generic.ChannelWiseInter(h[:, :c2], c) * p[1]
        got = Width("tas", (k1, k2), p).apply(h, supernet.masks.double())
        assert torch.equal(got[:, :c], expected) and not got[:, c:].any(), (c1, c2)


def search_of(name, device="cpu", settings=TINY, seed=0):
    torch.manual_seed(seed)
    return make_search(name, 10, 1, settings, torch.Generator().manual_seed(seed), torch.device(device))


def test_gdas_forward_is_one_hot_and_its_backward_soft():
    search = search_of("gdas")
    search.set_epoch(0, 10)
    choice = search.hard()
    value = choice.weights.detach()
    argmax = torch.tensor(choice.index)
    assert torch.equal(value.argmax(-1), argmax)
    others = value.clone()
    others[torch.arange(NUM_EDGES), argmax] = 0
    assert not others.any()  # one-hot - p + p is exactly 0 off the argmax ...
    assert torch.allclose(value[torch.arange(NUM_EDGES), argmax], torch.ones(NUM_EDGES), atol=1e-6)  # ... 1 on it
    x = torch.randn(4, 1, 16, 16)
    path = search.arch_str(tuple(choice.index))
    logits = search.forward(x, choice)
    torch.testing.assert_close(logits, search.forward(x, EdgeChoice.arch(path)))
    logits.sum().backward()
    assert (search.alphas.grad != 0).all()  # every op's alpha learns, not only the sampled one


def test_gdas_samples_follow_the_alphas():
    search = search_of("gdas")
    with torch.no_grad():
        search.alphas.zero_()
        search.alphas[:, 3] = 2.0  # nor_conv_3x3 favoured: p = e^2 / (e^2 + 4) = 0.65 per edge
    search.tau = 1.0
    draws = torch.tensor([search.hard().index for _ in range(400)])
    share = (draws == 3).float().mean().item()
    p = math.exp(2) / (math.exp(2) + 4)
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / draws.numel())


def test_rsps_never_leaves_a_node_with_only_none():
    search = search_of("random")
    into = {j: [e for e, (_, t) in enumerate(EDGES) if t == j] for j in (1, 2, 3)}
    seen = set()
    for _ in range(200):
        for ops in search.path().per_cell:
            seen |= set(ops)
            for edges in into.values():
                assert any(ops[e] != OPS.index("none") for e in edges)
    assert seen == set(range(NUM_OPS))


def test_setn_scores_the_most_likely_archs():
    search = search_of("setn", settings=Settings(channels=4, cells_per_stage=1, candidates=1))
    with torch.no_grad():
        search.alphas.copy_(torch.log(one_hot(ALL_CONV) * 0.9 + 0.025))
    valid = lambda: iter([(torch.randn(4, 1, 16, 16), torch.randint(10, (4,)))])  # noqa: E731
    assert search.select(valid)[0] == ALL_CONV


def _loss_at(search, weights, alphas, batch):
    """The supernet's loss on ``batch`` at the given weights and alphas (DARTS' mixture)."""
    net = deepcopy(search.net)
    with torch.no_grad():
        for p, w in zip(net.parameters(), weights, strict=True):
            p.copy_(w)
    return F.cross_entropy(net(batch[0], EdgeChoice("mix", weights=F.softmax(alphas, -1)))[1], batch[1])


def test_darts_v2_gradient_matches_finite_differences():
    """The second-order arch gradient (unrolled step + finite-difference Hessian-vector product) against
    central differences of L_val(w - lr (dL_train/dw + wd w), alpha) itself, in float64. Both differences
    step by 1e-7 (the search keeps xautodl's r = 0.01): the net's tens of thousands of ReLU inputs make a
    kink within a 1e-5 step likely, and one kink inside a step moved the difference by up to 30x the gradient
    on some draws; at 1e-7 every draw tried agrees to ~5e-9, and float64 rounding stays near 1e-9."""
    search = search_of("darts-v2", settings=Settings(channels=2, cells_per_stage=1))
    search.net.double()
    search.alphas.data = torch.randn(NUM_EDGES, NUM_OPS, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    train = (torch.randn(8, 1, 8, 8, dtype=torch.float64, generator=g), torch.randint(10, (8,), generator=g))
    valid = (torch.randn(8, 1, 8, 8, dtype=torch.float64, generator=g), torch.randint(10, (8,), generator=g))
    lr, wd = 0.5, 5e-4
    weights = [p.detach().clone() for p in search.net.parameters()]
    w_optimizer = torch.optim.SGD(search.net.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    unrolled_arch_gradient(search, train, valid, w_optimizer, r=1e-7)
    second_order = search.alphas.grad.clone()

    def objective(alphas):
        net = deepcopy(search.net)
        with torch.no_grad():
            for p, w in zip(net.parameters(), weights, strict=True):
                p.copy_(w)
        loss = F.cross_entropy(net(train[0], EdgeChoice("mix", weights=F.softmax(alphas, -1)))[1], train[1])
        dw = torch.autograd.grad(loss, list(net.parameters()))
        ahead = [w - lr * (d + wd * w) for w, d in zip(weights, dw, strict=True)]
        return _loss_at(search, ahead, alphas, valid).item()

    eps = 1e-7
    base = search.alphas.detach().clone()
    numeric = torch.zeros_like(second_order)
    for i, j in itertools.product(range(NUM_EDGES), range(NUM_OPS)):
        up, down = base.clone(), base.clone()
        up[i, j] += eps
        down[i, j] -= eps
        numeric[i, j] = (objective(up) - objective(down)) / (2 * eps)
    a = base.clone().requires_grad_()
    first_order = torch.autograd.grad(_loss_at(search, weights, a, valid), a)[0]
    scale = numeric.abs().max()
    assert (second_order - numeric).abs().max() < 1e-5 * scale
    assert (first_order - numeric).abs().max() > 1e-2 * scale  # the second-order term matters: the check can fail


def test_enas_controller_training_is_nats_benchs_train_controller():
    """xautodl 1.0.0's ENAS ``Controller``, trained by search-cell.py's ``train_controller`` loop (re-expressed
    here; its model imported, never copied) with nasforge's draws fed in, against nasforge's controller and
    ``train_controller``, in float64: two epochs (the first without a baseline), same parameters and the same
    next-epoch baseline. nasforge once moved one baseline after every sample and detached the entropy's
    gradient: after one epoch from a baseline of 0.5, NATS-Bench's next baseline was 0.4974 and nasforge's 0.2433."""
    generic = pytest.importorskip("xautodl.models.cell_searchs.generic_model")
    from nasforge.oneshot.algorithms import ARCH_OPTIMIZER, train_controller

    settings = Settings(controller_steps=3, controller_aggregate=4)
    edge2index = {f"{i}<-{j}": k for k, (i, j) in enumerate((i, j) for i in range(1, 4) for j in range(i))}
    torch.manual_seed(3)
    ours = Controller().double()
    theirs = generic.Controller(edge2index, list(OPS), 4).double()
    theirs.load_state_dict(ours.state_dict())

    def adam(params):  # NATS-Bench's arch optimiser, ENAS's settings (search-cell.py's command lines)
        a = ARCH_OPTIMIZER["enas"]
        return torch.optim.Adam(params, lr=a["lr"], betas=(0.5, 0.999), weight_decay=a["weight_decay"], eps=a["eps"])

    def accuracy_of(ops, batch):  # a stand-in validation accuracy, a fraction, differing across archs
        return ((sum(o * (k + 1) for k, o in enumerate(ops)) + batch) % 11) / 10

    drawn: list[tuple[int, ...]] = []
    generator = torch.Generator().manual_seed(9)
    original_forward = ours.forward
    ours.forward = lambda *a, **k: (out := original_forward(*a, **k), drawn.append(out[2]))[0]
    ours_optimizer, baseline, ours_baselines = adam(ours.parameters()), None, []
    for _ in range(2):
        _, baseline = train_controller(ours, ours_optimizer, itertools.count(), accuracy_of, settings, baseline,
                                       generator)
        ours_baselines.append(baseline)

    queue = [op for ops in drawn for op in ops]
    optimizer, prev_baseline, theirs_baselines = adam(theirs.parameters()), None, []
    with pytest.MonkeyPatch.context() as patch:  # nasforge's draws, in order, as Categorical's samples
        patch.setattr(torch.distributions.Categorical, "sample", lambda self, *shape: torch.tensor([[queue.pop(0)]]))
        for _ in range(2):  # search-cell.py's train_controller, its constants taken from the settings
            theirs.train()
            theirs.zero_grad()
            batches, step_baselines = itertools.count(), []
            for step in range(settings.controller_steps * settings.controller_aggregate):
                batch = next(batches)
                log_prob, entropy, structure = theirs()
                ops = tuple(OPS.index(op) for node in structure.nodes for op, _ in node)
                val_top1 = torch.tensor(accuracy_of(ops, batch), dtype=torch.float64)
                reward = val_top1 + settings.controller_entropy_weight * entropy
                if prev_baseline is None:
                    baseline = val_top1
                else:
                    baseline = prev_baseline - (1 - settings.controller_baseline_decay) * (prev_baseline - reward)
                loss = -1 * log_prob * (reward - baseline)
                step_baselines.append(baseline.item())
                loss = loss / settings.controller_aggregate
                loss.backward(retain_graph=True)
                if (step + 1) % settings.controller_aggregate == 0:
                    torch.nn.utils.clip_grad_norm_(theirs.parameters(), 5.0)
                    optimizer.step()
                    theirs.zero_grad()
            prev_baseline = sum(step_baselines) / len(step_baselines)  # BaselineMeter.avg
            theirs_baselines.append(prev_baseline)
    assert not queue
    assert ours_baselines == pytest.approx(theirs_baselines, abs=1e-15, rel=0)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-14), name


def test_enas_controller_log_probs_are_its_sampling_distribution():
    torch.manual_seed(0)
    controller = Controller().double()
    generator = torch.Generator().manual_seed(5)
    log_prob, _, ops, probs = controller(generator)
    teacher = controller.log_prob(torch.tensor([ops]))
    assert torch.allclose(log_prob, teacher[0], rtol=0, atol=1e-12)
    assert log_prob.item() == pytest.approx(sum(math.log(p[o]) for p, o in zip(probs, ops, strict=True)), abs=1e-12)
    every = torch.tensor(list(itertools.product(range(NUM_OPS), repeat=NUM_EDGES)))
    assert controller.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-9)  # a distribution
    log_prob.backward()  # REINFORCE differentiates the sampled log-prob
    assert controller.w_pred.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["tas", "mask_gumbel", "mask_rl"])
def test_size_searches_draw_masks_over_the_widest_network_and_derive_sss_strings(name):
    search = search_of(name)
    search.set_epoch(0, 2)
    widths, log_probs = search.widths()
    assert len(widths) == 5
    for width in widths:
        mask = width.apply(torch.ones(1, 64, 1, 1), search.net.masks).view(-1)
        assert (mask[1:] <= mask[:-1] + 1e-6).all() and mask[0] > 0  # keeps a prefix of channels, fading out
        if name == "mask_rl":
            assert width.mode == "one" and set(mask.tolist()) <= {0.0, 1.0}
        if name == "tas":
            assert width.mode == "tas" and len(set(width.index)) == 2
            assert width.weights.sum().item() == pytest.approx(1.0)
        if name == "mask_gumbel":
            assert width.weights.sum().item() == pytest.approx(1.0)
    assert len(log_probs) == (5 if name == "mask_rl" else 0)
    arch = search.genotype()
    assert get_space("sss").parse(arch) == tuple(CHANNELS[int(i)] for i in search.alphas.argmax(-1))
    with torch.no_grad():
        search.alphas.zero_()
        search.alphas[:, 2] = 5.0
    assert search.genotype() == "24:24:24:24:24"


def job(data, tmp_path, algorithm, epochs=2, **changes):
    settings = {"algorithm": algorithm, "dataset": "mnist5k", "seed": 7, "epochs": epochs,
                "data": data / "mnist5k", "out": tmp_path / f"{algorithm}.parquet",
                "timing_out": tmp_path / "measured" / f"{algorithm}.parquet", "steps_per_epoch": 2,
                "eval_batch_size": 25, "settings": TINY, "device": "cpu"}
    return search_module.SearchJob(**{**settings, **changes})


@pytest.mark.parametrize("algorithm", ["darts-v1", "gdas", "setn", "random", "enas", "tas", "mask_rl"])
def test_a_search_is_deterministic_and_records_every_epoch(mnist_tiny, tmp_path, algorithm):
    first = search_module.run_search(job(mnist_tiny, tmp_path / "a", algorithm)).read_bytes()
    second = search_module.run_search(job(mnist_tiny, tmp_path / "b", algorithm)).read_bytes()
    assert first == second
    table = pl.read_parquet(tmp_path / "a" / f"{algorithm}.parquet")
    assert table["epoch"].to_list() == [0, 1] and not table["diverged"].any()
    space = "sss" if algorithm in ("tas", "mask_rl") else "tss"
    for row in table.iter_rows(named=True):
        assert get_space(space).index(row["arch"]) == row["arch_index"]
        assert math.isfinite(row["base_loss"]) and 0 <= row["valid_acc"] <= 100
        assert len(row["distribution"]) == (40 if space == "sss" else 30) and row["entropy"] > 0
    other = search_module.run_search(job(mnist_tiny, tmp_path / "c", algorithm, seed=8)).read_bytes()
    assert other != first


def test_darts_pt_adds_its_selection_after_the_last_epoch(mnist_tiny, tmp_path):
    from nasforge.oneshot.darts_pt import PtSettings

    table = pl.read_parquet(search_module.run_search(
        job(mnist_tiny, tmp_path, "darts-v2", pt=PtSettings(finetune_steps=1, eval_batches=1))))
    assert table.select("epoch", "selection").rows() == [(0, "argmax"), (1, "argmax"), (1, "darts-pt")]
    pt = table.row(2, named=True)
    assert get_space("tss").index(pt["arch"]) == pt["arch_index"] and 0 <= pt["selection_acc"] <= 100
    with pytest.raises(InputError, match="darts-pt"):
        search_module.run_search(job(mnist_tiny, tmp_path, "gdas", pt=PtSettings()))


def test_a_crashed_search_resumes_to_the_same_bytes(mnist_tiny, tmp_path, monkeypatch):
    whole = search_module.run_search(job(mnist_tiny, tmp_path / "whole", "enas", epochs=3)).read_bytes()
    real = search_module._epoch

    def crash_in_third_epoch(job_, search, splits, w_opt, a_opt, generator, epoch, device, space):
        if epoch == 2:
            raise KeyboardInterrupt("killed")
        return real(job_, search, splits, w_opt, a_opt, generator, epoch, device, space)

    monkeypatch.setattr(search_module, "_epoch", crash_in_third_epoch)
    crashed = job(mnist_tiny, tmp_path / "crashed", "enas", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        search_module.run_search(crashed)
    assert crashed.checkpoint.is_file() and not crashed.out.exists()
    monkeypatch.setattr(search_module, "_epoch", real)
    assert search_module.run_search(crashed).read_bytes() == whole
    assert not crashed.checkpoint.exists()
    with pytest.raises(InputError, match="other settings"):  # a checkpoint binds its settings
        monkeypatch.setattr(search_module, "_epoch", crash_in_third_epoch)
        with pytest.raises(KeyboardInterrupt):
            search_module.run_search(job(mnist_tiny, tmp_path / "again", "enas", epochs=3))
        monkeypatch.setattr(search_module, "_epoch", real)
        search_module.run_search(job(mnist_tiny, tmp_path / "again", "enas", epochs=3, seed=9))


def test_a_diverging_search_is_recorded_not_a_crash(mnist_tiny, tmp_path):
    from nasforge.protocol import Protocol

    blown = Protocol.weight_sharing().with_overrides({"lr": 1e30})
    table = pl.read_parquet(search_module.run_search(job(mnist_tiny, tmp_path, "darts-v1", epochs=3, protocol=blown)))
    assert table["diverged"].to_list()[-1] is True  # recorded, and the search stopped there
    bad = table.filter(pl.col("diverged"))
    assert bad.height == 1 and bad["arch"][0] is None and math.isnan(bad["base_loss"][0])


@pytest.mark.slow
def test_a_killed_search_job_resumes_to_the_same_bytes(mnist_tiny, tmp_path):
    """`nasforge oneshot` as the pipeline runs it, SIGKILLed after its first epoch's checkpoint."""
    params = {"datasets": ["mnist5k"], "train": {"device": "cpu", "threads": 1},
              "oneshot": {"algorithms": ["gdas"], "seeds": [3], "epochs": {"tss": 4, "sss": 1}, "steps_per_epoch": 3,
                          "channels": 4, "cells_per_stage": 1, "eval_batch_size": 25}}
    outputs = {}
    for name in ("whole", "killed"):
        results = tmp_path / name
        (results / "data").mkdir(parents=True)
        os.symlink(mnist_tiny / "mnist5k", results / "data" / "mnist5k")
        cmd = [sys.executable, "-m", "nasforge.cli", "oneshot", "--params-json", json.dumps(params), "--results",
               str(results), "--algorithm", "gdas", "--dataset", "mnist5k", "--seed", "3"]
        r = Results(str(results))
        if name == "killed":
            checkpoint = tmp_path / name / "oneshot/runs/gdas/mnist5k/seed3.ckpt"
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.time() + 300
            while time.time() < deadline and not checkpoint.is_file():
                assert proc.poll() is None, "the job finished before it could be killed"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            assert checkpoint.is_file() and not os.path.exists(r.oneshot_run("gdas", "mnist5k", 3))
        result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
        if name == "killed":
            assert "resuming after epoch" in result.stderr
        outputs[name] = open(r.oneshot_run("gdas", "mnist5k", 3), "rb").read()
    assert outputs["whole"] == outputs["killed"]
