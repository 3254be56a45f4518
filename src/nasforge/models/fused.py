"""G architectures of one space as one network: channel stacking (HFTA's idea, Wang et al. 2021).

Model g owns the channel block ``[g * W, (g + 1) * W)`` of every activation,
W the widest member's width at that layer. Convolutions are grouped (one
group per model), BatchNorm is per channel (so per model), the classifier is
a batched matmul: no operation mixes two models' numbers, so each member
computes what its reference network computes, up to the summation order of
the kernels. Members that share an input (the stem) share the image batch.

Topologies differ within a TSS group: each cell edge partitions the models
by their op on that edge and runs one stacked op per part on those models'
channel blocks (gathered and scattered with index_select / index_add). A
part holding every model needs no gather. Widths differ within an SSS group:
a narrower member's block is zero-padded, with zero weights; padded channels
then stay exactly zero forward and get exactly zero gradient (every weight
reading them is zero, every BN on them sees zeros), so they never change a
member's numbers, and SGD leaves them zero.

Weights are copied in from each member's reference network (its own init),
and can be copied back out (``export_to``), which is how the tests compare
the two engines parameter by parameter.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import InputError
from nasforge.models.networks import TinyNetwork, layer_plan
from nasforge.spaces import get_space


class StackedConv(nn.Module):
    """Bias-free convs of m models; grouped unless every model reads the same input (the stem)."""

    def __init__(self, m: int, w_in: int, w_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 shared_input: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(m * w_out, w_in, kernel, kernel))
        self.w_out, self.stride, self.padding = w_out, stride, padding
        self.groups = 1 if shared_input else m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, None, self.stride, self.padding, 1, self.groups)

    def block(self, p: int, c_out: int, c_in: int) -> tuple[slice, slice]:
        return slice(p * self.w_out, p * self.w_out + c_out), slice(0, c_in)


def _bn_block(p: int, width: int, channels: int) -> tuple[slice]:
    return (slice(p * width, p * width + channels),)


class _Links:
    """Where each member's reference tensors live in the fused network."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, nn.Module, str, tuple]] = []

    def conv(self, g: int, ref: str, conv: StackedConv, p: int, c_out: int, c_in: int) -> None:
        self.entries.append((g, f"{ref}.weight", conv, "weight", conv.block(p, c_out, c_in)))

    def bn(self, g: int, ref: str, bn: nn.BatchNorm2d, p: int, width: int, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.entries.append((g, f"{ref}.{name}", bn, name, _bn_block(p, width, channels)))


class _ReLUConvBN(nn.Module):
    def __init__(self, m: int, w_in: int, w_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = StackedConv(m, w_in, w_out, kernel, stride, padding)
        self.bn = nn.BatchNorm2d(m * w_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))

    def link(self, links: _Links, g: int, ref: str, p: int, c_in: int, c_out: int, relu: bool = True) -> None:
        links.conv(g, f"{ref}.op.1" if relu else f"{ref}.conv", self.conv, p, c_out, c_in)
        links.bn(g, f"{ref}.op.2" if relu else f"{ref}.bn", self.bn, p, self.conv.w_out, c_out)


class _FactorizedReduce(_ReLUConvBN):
    """``skip_connect`` across a channel change: Conv1x1 -> BN, no ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class _Zero(nn.Module):
    """``none`` for the members sharing it: their channels times zero (TSS cells keep their width)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class _Resize(nn.Module):
    """Identity of m models from blocks of w_in to blocks of w_out channels (SSS padding only)."""

    def __init__(self, m: int, w_in: int, w_out: int) -> None:
        super().__init__()
        self.m, self.w_in, self.w_out = m, w_in, w_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.w_in == self.w_out:
            return x
        b, _, h, w = x.shape
        blocks = x.reshape(b, self.m, self.w_in, h, w)
        keep = min(self.w_in, self.w_out)
        blocks = F.pad(blocks[:, :, :keep], (0, 0, 0, 0, 0, self.w_out - keep))
        return blocks.reshape(b, self.m * self.w_out, h, w)


class _Pool(nn.Module):
    def __init__(self, m: int, w_in: int, w_out: int, preprocess: bool) -> None:
        super().__init__()
        self.preprocess = _ReLUConvBN(m, w_in, w_out, 1, 1, 0) if preprocess else _Resize(m, w_in, w_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.preprocess(x), 3, 1, 1, count_include_pad=False)


def _channels(positions: list[int], width: int) -> torch.Tensor:
    return torch.cat([torch.arange(p * width, (p + 1) * width) for p in positions])


class FusedCell(nn.Module):
    """One cell layer of G models; the ops of edge (i -> j) run once per group of models sharing them."""

    def __init__(self, cells: list[tuple[tuple[str, ...], int, int]], w_in: int, w_out: int, links: _Links,
                 layer: int) -> None:
        super().__init__()
        G = len(cells)
        self.G, self.w_in, self.w_out = G, w_in, w_out
        self.ops = nn.ModuleList()
        self.plan: list[list[tuple[int, int, str | None]]] = []  # per node: (op module, source node, index key)
        k = 0
        for j in range(1, 4):
            node = []
            for i in range(j):
                parts: dict[tuple[str, bool], list[int]] = defaultdict(list)
                for g, (ops, c_in, c_out) in enumerate(cells):
                    parts[(ops[k], (c_in if i == 0 else c_out) == c_out)].append(g)
                for (op, same), members in sorted(parts.items()):
                    module = self._make(op, len(members), w_in if i == 0 else w_out, w_out, same)
                    for p, g in enumerate(members):
                        _, c_in, c_out = cells[g]
                        self._link(module, links, g, f"cells.{layer}.layers.{k}", p, c_in if i == 0 else c_out, c_out)
                    node.append((len(self.ops), i, self._index(members, w_in if i == 0 else w_out, w_out)))
                    self.ops.append(module)
                k += 1
            self.plan.append(node)

    def _index(self, members: list[int], w_src: int, w_dst: int) -> str | None:
        if len(members) == self.G:
            return None
        name = f"idx{len(self._buffers) // 2}"
        self.register_buffer(f"{name}_in", _channels(members, w_src), persistent=False)
        self.register_buffer(f"{name}_out", _channels(members, w_dst), persistent=False)
        return name

    @staticmethod
    def _make(op: str, m: int, w_src: int, w_out: int, same: bool) -> nn.Module:
        """The stacked op; ``same``: the members' own edge keeps its channel count (always in TSS)."""
        if op == "none":  # x * 0, as in the reference: a NaN upstream stays visible (`none` is TSS-only)
            return _Zero()
        if op == "skip_connect":
            return _Resize(m, w_src, w_out) if same else _FactorizedReduce(m, w_src, w_out, 1, 1, 0)
        if op == "nor_conv_1x1":
            return _ReLUConvBN(m, w_src, w_out, 1, 1, 0)
        if op == "nor_conv_3x3":
            return _ReLUConvBN(m, w_src, w_out, 3, 1, 1)
        if op == "avg_pool_3x3":
            return _Pool(m, w_src, w_out, preprocess=not same)
        raise InputError(f"unknown operation {op!r}")

    @staticmethod
    def _link(module: nn.Module, links: _Links, g: int, ref: str, p: int, c_in: int, c_out: int) -> None:
        if isinstance(module, _ReLUConvBN):
            module.link(links, g, ref, p, c_in, c_out, relu=not isinstance(module, _FactorizedReduce))
        elif isinstance(module, _Pool) and isinstance(module.preprocess, _ReLUConvBN):
            module.preprocess.link(links, g, f"{ref}.preprocess", p, c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in self.plan:
            acc, owned = None, False  # owned: ``acc`` is this node's own buffer, safe to add into in place
            for op, src, key in node:
                if key is None:
                    y = self.ops[op](nodes[src])
                    acc, owned = (y, False) if acc is None else (acc + y, True)  # y may be a node itself (skip)
                else:
                    y = self.ops[op](nodes[src].index_select(1, getattr(self, f"{key}_in")))
                    acc, owned = self._scatter(acc, owned, key, y), True
            nodes.append(acc)
        return nodes[-1]

    def _scatter(self, acc: torch.Tensor | None, owned: bool, key: str, y: torch.Tensor) -> torch.Tensor:
        """Add ``y`` into its members' channels of ``acc``: in place only into a buffer this node owns
        (index_add saves nothing for backward), never into a tensor an op returned, which may be
        another node (a skip edge returns its input)."""
        index = getattr(self, f"{key}_out")
        if acc is None:
            b, _, h, w = y.shape
            return y.new_zeros((b, self.G * self.w_out, h, w)).index_add_(1, index, y)
        return acc.index_add_(1, index, y) if owned else acc.index_add(1, index, y)


class FusedResBlock(nn.Module):
    """NATS-Bench's stride-2 residual block for G models at once."""

    def __init__(self, G: int, w_in: int, w_out: int) -> None:
        super().__init__()
        self.conv_a = _ReLUConvBN(G, w_in, w_out, 3, 2, 1)
        self.conv_b = _ReLUConvBN(G, w_out, w_out, 3, 1, 1)
        self.shortcut = StackedConv(G, w_in, w_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(F.avg_pool2d(x, 2, 2)) + self.conv_b(self.conv_a(x))

    def link(self, links: _Links, g: int, ref: str, c_in: int, c_out: int) -> None:
        self.conv_a.link(links, g, f"{ref}.conv_a", g, c_in, c_out)
        self.conv_b.link(links, g, f"{ref}.conv_b", g, c_out, c_out)
        links.conv(g, f"{ref}.downsample.1", self.shortcut, g, c_out, c_in)


class FusedNetwork(nn.Module):
    """G reference networks of one space as one module; ``forward`` gives logits (G, batch, classes)."""

    def __init__(self, space: str, archs: list[str], num_classes: int, in_channels: int) -> None:
        super().__init__()
        plans = [layer_plan(space, a) for a in archs]
        G = self.G = len(archs)
        depth = len(plans[0][1])
        widths = [max(p[1][l][0] for p in plans) for l in range(depth)]  # noqa: E741
        self.links = _Links()
        self.stem = StackedConv(G, in_channels, widths[0], 3, 1, 1, shared_input=True)
        self.stem_bn = nn.BatchNorm2d(G * widths[0])
        for g, (_, layers) in enumerate(plans):
            self.links.conv(g, "stem.0", self.stem, g, layers[0][0], in_channels)
            self.links.bn(g, "stem.1", self.stem_bn, g, widths[0], layers[0][0])
        self.cells = nn.ModuleList()
        w_prev = widths[0]
        for l, ((_, reduction), w) in enumerate(zip(plans[0][1], widths, strict=True)):  # noqa: E741
            c_prev = [p[1][l - 1][0] if l else p[1][0][0] for p in plans]
            if reduction:
                block = FusedResBlock(G, w_prev, w)
                for g, p in enumerate(plans):
                    block.link(self.links, g, f"cells.{l}", c_prev[g], p[1][l][0])
            else:
                block = FusedCell([(p[0], c_prev[g], p[1][l][0]) for g, p in enumerate(plans)], w_prev, w,
                                  self.links, l)
            self.cells.append(block)
            w_prev = w
        self.last_bn = nn.BatchNorm2d(G * w_prev)
        self.classifier_weight = nn.Parameter(torch.zeros(G, num_classes, w_prev))
        self.classifier_bias = nn.Parameter(torch.zeros(G, num_classes))
        self.width = w_prev
        for g, p in enumerate(plans):
            c_last = p[1][-1][0]
            self.links.bn(g, "lastact.0", self.last_bn, g, w_prev, c_last)
            self.links.entries.append((g, "classifier.weight", self, "classifier_weight", (g, slice(None), slice(0, c_last))))
            self.links.entries.append((g, "classifier.bias", self, "classifier_bias", (g,)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_bn(self.stem(x))
        for cell in self.cells:
            x = cell(x)
        features = F.relu(self.last_bn(x)).mean(dim=(2, 3))  # (batch, G * width)
        features = features.view(len(x), self.G, self.width).transpose(0, 1)  # (G, batch, width)
        return torch.baddbmm(self.classifier_bias.unsqueeze(1), features, self.classifier_weight.transpose(1, 2))

    @torch.no_grad()
    def load_from(self, nets: list[TinyNetwork]) -> FusedNetwork:
        """Copy every member's weights and BN statistics in from its reference network."""
        states = [n.state_dict() for n in nets]
        for g, ref, module, attr, index in self.links.entries:
            getattr(module, attr)[index].copy_(states[g][ref])
        return self

    @torch.no_grad()
    def export_to(self, nets: list[TinyNetwork]) -> list[TinyNetwork]:
        """Copy every member's weights and BN statistics back out into reference networks."""
        states = [n.state_dict() for n in nets]
        for g, ref, module, attr, index in self.links.entries:
            states[g][ref].copy_(getattr(module, attr)[index])
        return nets


def fuse(space: str, arch_indices: list[int], nets: list[TinyNetwork], num_classes: int,
         in_channels: int) -> FusedNetwork:
    """A fused network holding exactly ``nets`` (the members' reference networks, initialised)."""
    archs = [get_space(space).arch(i) for i in arch_indices]
    device = next(nets[0].parameters()).device
    return FusedNetwork(space, archs, num_classes, in_channels).to(device).load_from(nets)
