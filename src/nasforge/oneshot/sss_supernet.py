"""The SSS supernet: the widest network (64 channels in all five layers), narrowed by channel masks.

A width of c in layer l keeps the first c channels of every tensor that layer computes and zeroes
the rest: the stem's output (for l = 0), every cell edge's output, a reduction block's two convs and
its shortcut. Zeroed channels stay zero through BN on batch statistics, ReLU, pooling and the next
convolution, so the masked supernet computes exactly what the discrete network of those widths
computes with the first c channels' weights (``discrete_network``; the tests check it). A cell whose
width differs from its input's has a 1x1 conv + BN on its skip edge (FactorizedReduce) in the
discrete network and the identity otherwise; the supernet holds both and weighs them by the
probability that the two layers' widths agree (1 or 0 for a fixed or sampled width).

This differs from xautodl's ``GenericNAS301Model`` on purpose (README, fidelity table): it masks
only each cell's output, so channels beyond the width flow between the cell's inner nodes, and its
skip edges are always the identity; its narrowed supernet is no network of the space.

Each layer's width, per forward (``Width``):

- ``one``: a fixed width (a derived arch; mask_rl's sample);
- ``mix``: the mask ``sum_k w_k m_k`` of soft weights over the candidates (mask_gumbel, FBNet-V2);
- ``tas``: two sampled widths c1, c2 with weights p1, p2, each kept and stretched to max(c1, c2) by
  channel-wise interpolation, then summed (TAS's ``ChannelWiseInter``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.models.networks import GlobalAvgPool, TinyNetwork
from nasforge.models.ops import FactorizedReduce, ResNetBasicblock, make_op
from nasforge.spaces.sss import CHANNELS, FIXED_CELL, NUM_LAYERS, REDUCTIONS, format_arch, parse_arch
from nasforge.spaces.tss import EDGES
from nasforge.spaces.tss import parse_arch as parse_cell

WIDEST = max(CHANNELS)
NUM_CHOICES = len(CHANNELS)
_SKIP_EDGE = 3  # FIXED_CELL's skip_connect~0 (node 0 -> node 3)


@dataclass(frozen=True)
class Width:
    """One layer's width in one forward; ``probs`` is its distribution over ``CHANNELS``."""

    mode: str
    index: tuple[int, ...]  # one: (k,); tas: (k1, k2); mix: ()
    weights: torch.Tensor | None = None  # mix: (choices,); tas: (2,)

    @classmethod
    def fixed(cls, channels: int) -> Width:
        return cls("one", (CHANNELS.index(channels),))

    def probs(self) -> list[float]:
        p = [0.0] * NUM_CHOICES
        if self.mode == "one":
            p[self.index[0]] = 1.0
        elif self.mode == "mix":
            p = self.weights.detach().double().tolist()
        else:
            for k, w in zip(self.index, self.weights.detach().double().tolist(), strict=True):
                p[k] += w
        return p

    def apply(self, h: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if self.mode == "one":
            return h * masks[self.index[0]].view(1, -1, 1, 1)
        if self.mode == "mix":
            return h * (self.weights @ masks).view(1, -1, 1, 1)
        c1, c2 = (CHANNELS[k] for k in self.index)
        wide = max(c1, c2)
        out = _stretch(h[:, :c1], wide) * self.weights[0] + _stretch(h[:, :c2], wide) * self.weights[1]
        return F.pad(out, (0, 0, 0, 0, 0, h.shape[1] - wide))


def _stretch(h: torch.Tensor, channels: int) -> torch.Tensor:
    """TAS's channel-wise interpolation (xautodl's ``ChannelWiseInterV2``, an adaptive average pool of the
    channel axis to ``channels`` entries), as a matrix product: adaptive_avg_pool3d's CUDA backward is
    not deterministic."""
    c = h.shape[1]
    if c == channels:
        return h
    pool = torch.zeros(channels, c, dtype=h.dtype, device=h.device)
    for i in range(channels):
        start, end = (i * c) // channels, -((-(i + 1) * c) // channels)
        pool[i, start:end] = 1.0 / (end - start)
    return torch.einsum("oc,bchw->bohw", pool, h)


class _Masked(nn.Module):
    """A module whose output is narrowed to its layer's width of the current forward."""

    def __init__(self, module: nn.Module, layer: int, net: SizeSupernet) -> None:
        super().__init__()
        self.module, self.layer = module, layer
        self._net = [net]  # a list: not registered as a child (the net owns this module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self._net[0]
        return net.widths[self.layer].apply(self.module(x), net.masks)


class _Skip(nn.Module):
    """The fixed cell's skip edge: identity when the cell keeps its input's width, FactorizedReduce when
    it changes it, weighed by the probability of each."""

    def __init__(self, layer: int, net: SizeSupernet) -> None:
        super().__init__()
        self.reduce = FactorizedReduce(WIDEST, WIDEST, affine=False, track=False)
        self.layer = layer
        self._net = [net]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self._net[0]
        p_in, p_out = net.widths[self.layer - 1].probs(), net.widths[self.layer].probs()
        same = sum(a * b for a, b in zip(p_in, p_out, strict=True)) if self.layer else 1.0
        if same == 1.0:
            return x
        reduced = net.widths[self.layer].apply(self.reduce(x), net.masks)
        return reduced if same == 0.0 else x * same + reduced * (1.0 - same)


class SizeCell(nn.Module):
    """The fixed cell at 64 channels with every edge narrowed to the layer's width."""

    def __init__(self, layer: int, net: SizeSupernet) -> None:
        super().__init__()
        ops = parse_cell(FIXED_CELL)
        self.layers = nn.ModuleList(
            _Skip(layer, net) if e == _SKIP_EDGE else _Masked(make_op(op, WIDEST, WIDEST, affine=False, track=False), layer, net)
            for e, op in enumerate(ops))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.layers[e](nodes[i]) for e, (i, target) in enumerate(EDGES) if target == j))
        return nodes[-1]


class SizeSupernet(nn.Module):
    """NATS-Bench's SSS search model; ``forward(x, widths)`` with one ``Width`` per layer."""

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.widths: list[Width] = [Width.fixed(WIDEST)] * NUM_LAYERS
        masks = torch.zeros(NUM_CHOICES, WIDEST)
        for k, c in enumerate(CHANNELS):
            masks[k, :c] = 1.0
        self.register_buffer("masks", masks, persistent=False)
        self.stem = _Masked(nn.Sequential(nn.Conv2d(in_channels, WIDEST, 3, padding=1, bias=False),
                                          nn.BatchNorm2d(WIDEST)), 0, self)
        self.cells = nn.ModuleList()
        for layer, reduction in enumerate(REDUCTIONS):
            if reduction:
                block = ResNetBasicblock(WIDEST, WIDEST)
                block.conv_a = _Masked(block.conv_a, layer, self)
                block.conv_b = _Masked(block.conv_b, layer, self)
                block.downsample = _Masked(block.downsample, layer, self)
                self.cells.append(block)
            else:
                self.cells.append(SizeCell(layer, self))
        self.lastact = nn.Sequential(nn.BatchNorm2d(WIDEST, affine=False, track_running_stats=False), nn.ReLU())
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(WIDEST, num_classes)
        self.num_classes, self.in_channels = num_classes, in_channels

    def forward(self, x: torch.Tensor, widths: list[Width]) -> tuple[torch.Tensor, torch.Tensor]:
        self.widths = widths
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        features = self.global_pooling(self.lastact(x))
        return features, self.classifier(features)


def widths_of(arch: str) -> list[Width]:
    return [Width.fixed(c) for c in parse_arch(arch)]


def discrete_network(supernet: SizeSupernet, arch: str) -> TinyNetwork:
    """The network of ``arch`` with the supernet's weights sliced to its widths (first channels)."""
    channels = parse_arch(arch)
    net = TinyNetwork(parse_cell(FIXED_CELL), list(zip(channels, REDUCTIONS, strict=True)),
                      supernet.num_classes, supernet.in_channels)
    source = {k.replace(".module.", ".").replace("stem.module", "stem").replace(".reduce.", "."): v
              for k, v in supernet.state_dict().items()}
    state = {}
    for name, target in net.state_dict().items():
        if name not in source:
            continue  # BN affine weights and running statistics the supernet's edges lack
        value = source[name]
        state[name] = value[tuple(slice(0, n) for n in target.shape)] if value.dim() else value
    net.load_state_dict(state, strict=False)
    return net


__all__ = ["SizeSupernet", "Width", "discrete_network", "format_arch", "widths_of"]
