"""The candidate operations and blocks of NATS-Bench, layer for layer.

Module and attribute names follow NATS-Bench's own code (``op``, ``conv_a``,
``downsample``, ...) so a state dict keys the same way and a parameter count
matches theirs exactly. Every BN is affine and tracks running statistics;
convolutions carry no bias (they feed a BN). A supernet's cell edges (``nasforge.oneshot``) build the
same modules with ``affine=False, track=False``: BN on batch statistics, as NATS-Bench searches (the
TSS supernet's convs with a bias, as xautodl's ``bias=not affine`` gives them).
"""

from __future__ import annotations

import torch
from torch import nn

from nasforge.errors import InputError


class ReLUConvBN(nn.Module):
    """ReLU -> Conv -> BN, NATS-Bench's ``nor_conv_kxk``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, track: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """``none``: multiplies by zero rather than allocating, as NATS-Bench does,
    so a NaN upstream still shows up downstream (divergence stays visible)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c_in, self.c_out = c_in, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.c_in == self.c_out:
            return x.mul(0.0)
        shape = list(x.shape)
        shape[1] = self.c_out
        return x.new_zeros(shape)


class Pooling(nn.Module):
    """``avg_pool_3x3`` (padding excluded from the mean); a 1x1 ReLUConvBN first
    when the channel count changes (only in SSS cells)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.preprocess = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0, affine, track)
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x if self.preprocess is None else self.preprocess(x))


class FactorizedReduce(nn.Module):
    """``skip_connect`` across a channel change at stride 1: Conv1x1 -> BN, no ReLU."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def make_op(name: str, c_in: int, c_out: int, affine: bool = True, track: bool = True, bias: bool = False) -> nn.Module:
    """One cell edge; cells in both spaces run at stride 1. ``bias``: the convs of ``nor_conv_*`` carry a
    bias (xautodl's ``bias=not affine``: its TSS search cells have one, which BN on batch statistics
    cancels up to rounding; NATS-Bench's trained networks, affine, have none)."""
    if name == "none":
        return Zero(c_in, c_out)
    if name == "skip_connect":
        return nn.Identity() if c_in == c_out else FactorizedReduce(c_in, c_out, affine, track)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c_in, c_out, 1, 1, 0, affine, track, bias)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c_in, c_out, 3, 1, 1, affine, track, bias)
    if name == "avg_pool_3x3":
        return Pooling(c_in, c_out, affine, track)
    raise InputError(f"unknown operation {name!r}")


class ResNetBasicblock(nn.Module):
    """The stride-2 residual block between stages: two 3x3 ReLUConvBNs, and an
    AvgPool(2) -> Conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )
        self.out_dim = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class InferCell(nn.Module):
    """A 4-node cell: node j sums op(node i) over its incoming edges, every edge
    included, as NATS-Bench's ``InferCell`` does: a ``none`` edge adds ``x * 0``,
    which is an exact zero for finite x but NaN for an inf or NaN upstream, so a
    blow-up behind a ``none`` edge still reaches the loss and marks the run
    diverged, as it does in NATS-Bench.

    Edges out of the input node map c_in -> c_out; all others c_out -> c_out.
    """

    def __init__(self, ops: tuple[str, ...], c_in: int, c_out: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.node_inputs: list[list[tuple[int, int]]] = []  # (layer index, source node) per node
        k = 0
        for j in range(1, 4):
            inputs = []
            for i in range(j):
                inputs.append((len(self.layers), i))
                self.layers.append(make_op(ops[k], c_in if i == 0 else c_out, c_out, affine, track))
                k += 1
            self.node_inputs.append(inputs)
        self.out_dim = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for inputs in self.node_inputs:
            nodes.append(sum(self.layers[layer](nodes[src]) for layer, src in inputs))
        return nodes[-1]
