"""nasforge against NATS-Bench's own code (xautodl 1.0.0), used as the oracle.

xautodl pins numpy<=1.19.5, so it is installed with ``--no-deps`` (README's test
command does); the parts used here need only torch. Checked: the learning rate
of every iteration, the initial weights a seed gives, the network's output
(``none`` edges included, on finite and non-finite inputs), and ``valtest``.
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.archs import ALL_CONV
from nasforge.data.registry import DATASETS, nats_split_indices
from nasforge.models.networks import build_network
from nasforge.protocol import Protocol
from nasforge.spaces import get_space
from nasforge.spaces.sss import FIXED_CELL
from nasforge.train.loop import eval_metrics, make_optimizer, train_batches
from nasforge.train.splits import Splits

xautodl = pytest.importorskip("xautodl", reason="install the oracle: pip install --no-deps xautodl==1.0.0")
TSS, SSS = get_space("tss"), get_space("sss")


def xautodl_optimizers():
    """xautodl's procedures/optimizers.py alone (its package __init__ imports datasets and more)."""
    path = Path(xautodl.__file__).parent / "procedures" / "optimizers.py"
    spec = importlib.util.spec_from_file_location("xautodl_optimizers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nats_lrs(protocol: Protocol, epochs: int, iters: int) -> list[list[float]]:
    """Every iteration's lr, driven as NATS-Bench's evaluate_for_seed and procedure() drive it."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=protocol.lr)
    config = type("Config", (), {"warmup": protocol.warmup, "epochs": epochs, "eta_min": protocol.eta_min})
    scheduler = xautodl_optimizers().CosineAnnealingLR(opt, config.warmup, config.epochs, config.epochs,
                                                       config.eta_min)
    out = []
    for epoch in range(epochs + protocol.warmup):
        scheduler.update(epoch, 0.0)
        lrs = []
        for i in range(iters):
            scheduler.update(None, 1.0 * i / iters)
            lrs.append(opt.param_groups[0]["lr"])
        out.append(lrs)
    return out


@pytest.mark.parametrize("hp,overrides", [("01", {}), ("12", {}), ("90", {}), ("200", {}),
                                          ("12", {"warmup": 3, "eta_min": 1e-3, "lr": 0.05})])
def test_every_iteration_trains_at_nats_bench_lr(hp, overrides):
    protocol = Protocol.nats(hp).with_overrides(overrides)
    epochs, iters = int(hp), 7
    expected = nats_lrs(protocol, epochs, iters)
    ours = [[protocol.lr_at(e, i / iters, epochs) for i in range(iters)] for e in range(protocol.total_epochs(hp))]
    assert ours == expected  # exactly: the same formula in the same order of operations
    if not overrides:
        assert all(len(set(lrs)) == 1 for lrs in ours)  # constant within an epoch without warm-up
        assert ours[0][0] == 0.1 and ours[-1][0] == pytest.approx(0.05 * (1 + math.cos(math.pi * (epochs - 1) / epochs)))


def test_train_batches_sets_those_lrs_on_the_optimizer():
    """The trainer's own loop, not just the formula: what the optimizer holds at each batch."""
    protocol = Protocol.nats("12").with_overrides({"batch_size": 4, "warmup": 2})
    images = torch.zeros(10, 1, 8, 8, dtype=torch.uint8)
    from nasforge.data.loader import Augmentation

    splits = Splits(train=(images, torch.zeros(10, dtype=torch.int64)), evals={},
                    augmentation=Augmentation((0.0,), (1.0,), 0, False), num_classes=10, in_channels=1,
                    dataset="fake")
    net = torch.nn.Linear(1, 1)
    opt = make_optimizer(net, protocol)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for epoch in range(protocol.total_epochs("12")):
        seen.append([opt.param_groups[0]["lr"] for _ in train_batches(splits, protocol, gen, opt, epoch, 12)])
    assert seen == nats_lrs(protocol, 12, 3)


def xautodl_network(space: str, index: int, classes: int):
    from xautodl.config_utils import dict2config
    from xautodl.models import get_cell_based_tiny_net
    from xautodl.models.cell_searchs.genotypes import Structure

    if space == "tss":
        config = {"name": "infer.tiny", "C": 16, "N": 5, "genotype": Structure.str2structure(TSS.arch(index)),
                  "num_classes": classes}
    else:
        config = {"name": "infer.shape.tiny", "channels": tuple(int(c) for c in SSS.arch(index).split(":")),
                  "genotype": Structure.str2structure(FIXED_CELL), "num_classes": classes}
    return get_cell_based_tiny_net(dict2config(config, None))


@pytest.mark.parametrize("space,index", [("tss", 0), ("tss", 9), ("tss", 123), ("tss", TSS.index(ALL_CONV)),
                                         ("sss", 0), ("sss", 12345), ("sss", 32767)])
def test_a_seed_gives_nats_bench_initial_weights_and_outputs(space, index):
    torch.manual_seed(777)
    theirs = xautodl_network(space, index, 10)
    torch.manual_seed(777)
    ours = build_network(space, index, 10, 3)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for mode in ("train", "eval"):
        getattr(theirs, mode)(), getattr(ours, mode)()
        assert torch.equal(theirs(x)[1], ours(x)[1])


def test_a_blow_up_behind_a_none_edge_reaches_the_output_as_in_nats_bench():
    """Node 1 overflows; the output sees node 1 only through `none` edges. NATS-Bench sums x * 0,
    so inf * 0 = NaN reaches the logits (and the run is marked diverged); so must ours."""
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|"
    index = TSS.index(arch)
    torch.manual_seed(0)
    theirs = xautodl_network("tss", index, 10)
    ours = build_network("tss", index, 10, 3)
    ours.load_state_dict(theirs.state_dict())
    for net in (theirs, ours):
        net.eval()
        with torch.no_grad():
            net.cells[0].layers[0].op[1].weight.fill_(3e38)  # the 0 -> 1 conv of the first cell
    x = torch.ones(2, 3, 32, 32)
    out_theirs, out_ours = theirs(x)[1], ours(x)[1]
    assert torch.isnan(out_theirs).all() and torch.isnan(out_ours).all()


@pytest.mark.parametrize("dataset,file", [("cifar100", "cifar100-test-split.txt"),
                                          ("ImageNet16-120", "imagenet-16-120-test-split.txt")])
def test_valtest_is_nats_bench_ori_test_pooled_from_valid_and_test(dataset, file):
    """valid and test halve the set NATS-Bench evaluates whole as ori-test: disjoint and covering."""
    assert DATASETS[dataset].valtest
    valid, test = nats_split_indices(file, "xvalid"), nats_split_indices(file, "xtest")
    assert len(np.intersect1d(valid, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([valid, test])), np.arange(len(valid) + len(test)))
    assert len(valid) + len(test) == {"cifar100": 10_000, "ImageNet16-120": 6_000}[dataset]
    splits = Splits(train=(torch.zeros(1), torch.zeros(1)), evals={}, augmentation=None, num_classes=100,
                    in_channels=3, dataset=dataset, valtest=True)
    row = eval_metrics({"valid": (1000.0, 2000, 5000), "test": (3000.0, 3000, 5000)}, splits)
    assert row["valtest_loss"] == 0.4 and row["valtest_acc"] == 50.0
    assert row["valid_acc"] == 40.0 and row["test_acc"] == 60.0


def test_datasets_without_ori_test_halves_store_none():
    for name in ("cifar10-valid", "cifar10", "mnist5k"):
        assert not DATASETS[name].valtest
    splits = Splits(train=(torch.zeros(1), torch.zeros(1)), evals={}, augmentation=None, num_classes=10,
                    in_channels=1, dataset="mnist5k")
    row = eval_metrics({"valid": (5.0, 40, 50), "test": (4.0, 45, 50)}, splits)
    assert row["valtest_loss"] is None and row["valtest_acc"] is None and row["test_acc"] == 90.0
