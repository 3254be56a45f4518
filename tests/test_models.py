import random

import pytest
import torch
from torch import nn

from nasforge.models.cost import cost
from nasforge.models.networks import build_network
from nasforge.spaces import get_space

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _sample(name, k, seed=0):
    space = get_space(name)
    rng = random.Random(seed)
    return [space.arch(i) for i in rng.sample(range(len(space)), k)]


def _hooked_macs(net: nn.Module, in_channels: int, size: int) -> int:
    """Independent count: MACs of every conv and linear seen in a real forward pass."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += k * module.in_channels * module.out_channels // module.groups * output.shape[2] * output.shape[3]
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features + module.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, in_channels, size, size))
    for h in handles:
        h.remove()
    return total


def test_cost_anchors_cifar10():
    c = cost("tss", ALL_CONV)
    assert round(c["params"], 4) == 1.5315 and round(c["flops"], 2) == 220.12
    c = cost("tss", ALL_NONE)
    assert round(c["params"], 4) == 0.0733 and round(c["flops"], 2) == 7.78


def test_cost_ranges_match_nats_bench():
    # NATS-Bench's published CIFAR-10 extremes of SSS.
    lo, hi = cost("sss", "8:8:8:8:8"), cost("sss", "64:64:64:64:64")
    assert round(lo["params"], 3) == 0.012 and round(lo["flops"], 1) == 4.5
    assert round(hi["params"], 2) == 0.71 and round(hi["flops"]) == 274


def test_cost_scales_with_classes_and_input():
    c10, c100 = cost("tss", ALL_CONV, 10), cost("tss", ALL_CONV, 100)
    assert c100["params"] - c10["params"] == pytest.approx(90 * 65 / 1e6)
    c16 = cost("tss", ALL_CONV, 120, input_size=16)
    assert c16["flops"] == pytest.approx((cost("tss", ALL_CONV, 120)["flops"] - 64 * 120 * 1e-6 - 120e-6) / 4 + 64 * 120e-6 + 120e-6)


@pytest.mark.parametrize("name", ["tss", "sss"])
@pytest.mark.parametrize("num_classes,size", [(10, 32), (100, 32), (120, 16)])
def test_networks_build_run_and_match_cost_model(name, num_classes, size):
    archs = _sample(name, 3, seed=num_classes) + ([ALL_CONV, ALL_NONE] if name == "tss" else ["8:64:8:64:8"])
    for arch in archs:
        for in_channels in (3, 1):
            net = build_network(name, arch, num_classes, in_channels=in_channels)
            features, logits = net(torch.randn(2, in_channels, size, size))
            assert logits.shape == (2, num_classes)
            assert features.ndim == 2
            expected = cost(name, arch, num_classes, size, in_channels)
            assert sum(p.numel() for p in net.parameters()) == round(expected["params"] * 1e6)
            assert _hooked_macs(net, in_channels, size) == round(expected["flops"] * 1e6)


def test_network_by_index_and_structure():
    net = build_network("tss", 0, 10)
    assert len(net.cells) == 17
    assert sum(type(c).__name__ == "ResNetBasicblock" for c in net.cells) == 2
    bn = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.affine and m.track_running_stats for m in bn)
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d))
    # SSS cells across a channel change use FactorizedReduce for skip_connect.
    sss = build_network("sss", "8:16:32:48:64", 10)
    assert [type(m).__name__ for m in sss.cells[2].layers].count("FactorizedReduce") == 1


def test_all_none_cell_output_ignores_the_input_content():
    torch.manual_seed(0)
    net = build_network("tss", ALL_NONE, 10).eval()
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    # Only the residual blocks carry signal past a zero cell, and the first stage's last cell zeroes it.
    with torch.no_grad():
        assert torch.equal(net(a)[1], net(b)[1])


def _literal_nats_forward(net, x):
    """NATS-Bench's InferCell sum, term by term, none edges included."""
    from nasforge.models.ops import InferCell

    x = net.stem(x)
    for cell in net.cells:
        if isinstance(cell, InferCell):
            nodes = [x]
            for inputs in cell.node_inputs:
                nodes.append(sum(cell.layers[layer](nodes[src]) for layer, src in inputs))
            x = nodes[-1]
        else:
            x = cell(x)
    return net.classifier(net.global_pooling(net.lastact(x)))


@pytest.mark.parametrize("name", ["tss", "sss"])
def test_skipping_none_edges_is_bit_identical_to_the_literal_sum(name):
    torch.manual_seed(0)
    archs = [a for a in _sample(name, 12, seed=5)] + ([ALL_NONE, "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"]
                                                      if name == "tss" else [])
    for arch in archs:
        net = build_network(name, arch, 10)
        x = torch.randn(4, 3, 32, 32, requires_grad=True)
        fast = net(x)[1]
        slow = _literal_nats_forward(net, x)
        assert torch.equal(fast, slow), arch
        g_fast = torch.autograd.grad(fast.sum(), x)[0]
        g_slow = torch.autograd.grad(slow.sum(), x)[0]
        assert torch.equal(g_fast, g_slow), arch
