"""The TSS supernet: NAS-Bench-201's skeleton with every op on every cell edge, as NATS-Bench searches it.

Layer for layer xautodl's ``GenericNAS201Model`` (``exps/NATS-algos/search-cell.py``): a stem and
residual reduction blocks with ordinary BN, cells whose edges hold all five ops with BN on batch
statistics (``affine=False, track_running_stats=False``), the last BN likewise. The ops are
nasforge's own (``nasforge.models.ops``), the very modules the discrete networks are built from,
so a supernet restricted to one arch *is* that arch's network: ``discrete_network`` copies the
weights across and the tests check the two forwards agree.

How each edge combines its ops is the caller's choice, per forward (``EdgeChoice``):

- ``mix``: ``sum_i op_i(x) * w_i`` (DARTS' joint mode; SETN's arch step);
- ``gdas``: ``h_k * op_k(x) + sum_{i != k} h_i`` with ``h`` the straight-through Gumbel weights:
  one op computed, the value one-hot, the gradient reaching every weight (GDAS);
- ``one``: ``op_k(x)`` alone (a sampled or derived arch: SETN, RSPS, ENAS, selection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nasforge.models.networks import GlobalAvgPool, TinyNetwork
from nasforge.models.ops import ResNetBasicblock, make_op
from nasforge.spaces import get_space
from nasforge.spaces.tss import CELLS_PER_STAGE, CHANNELS, EDGES, OPS

NUM_EDGES = len(EDGES)
NUM_OPS = len(OPS)


def supernet_layers(channels: int = CHANNELS, cells_per_stage: int = CELLS_PER_STAGE) -> list[tuple[int, bool]]:
    """(channels, is_reduction) of each layer: N cells, a reduction, N cells, a reduction, N cells, the
    channels doubling at each reduction (search-cell.py's --channel 16 --num_cells 5 by default, the
    benchmark's own skeleton; a smaller N searches a shallower proxy, as DARTS searches 8 cells for 20)."""
    c, n = channels, cells_per_stage
    return [(c, False)] * n + [(2 * c, True)] + [(2 * c, False)] * n + [(4 * c, True)] + [(4 * c, False)] * n


@dataclass(frozen=True)
class EdgeChoice:
    """How every edge of every cell combines its ops in one forward.

    ``weights``: (edges, ops) tensor for ``mix``/``gdas``; ``index``: (edges,) op indices for
    ``gdas``/``one``. ``per_cell`` (``one`` only): one index row per cell, for RSPS's sampling of a
    fresh path in every cell."""

    mode: str
    weights: torch.Tensor | None = None
    index: tuple[int, ...] | None = None
    per_cell: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def arch(cls, arch: str) -> EdgeChoice:
        """The one path of an arch string."""
        ops = get_space("tss").parse(arch)
        return cls("one", index=tuple(OPS.index(op) for op in ops))


class SearchCell(nn.Module):
    """A 4-node cell with all ops on each of its 6 edges (``edges[e][i]``: op ``OPS[i]`` of edge e)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, c_in if i == 0 else c_out, c_out, affine=False, track=False, bias=True)
                          for op in OPS)
            for i, _ in EDGES)
        self.out_dim = c_out

    def forward(self, x: torch.Tensor, choice: EdgeChoice, index: tuple[int, ...] | None = None) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            terms = []
            for e, (i, target) in enumerate(EDGES):
                if target == j:
                    terms.append(self._edge(e, nodes[i], choice, index))
            nodes.append(sum(terms))
        return nodes[-1]

    def _edge(self, e: int, x: torch.Tensor, choice: EdgeChoice, index: tuple[int, ...] | None) -> torch.Tensor:
        ops = self.edges[e]
        if choice.mode == "mix":
            return sum(op(x) * w for op, w in zip(ops, choice.weights[e], strict=True))
        if choice.mode == "gdas":  # xautodl's forward_gdas, term for term
            k = choice.index[e]
            return sum(w * op(x) if i == k else w for i, (op, w) in enumerate(zip(ops, choice.weights[e], strict=True)))
        return ops[index[e]](x)


class TopologySupernet(nn.Module):
    """NATS-Bench's TSS search model for ``num_classes`` and ``in_channels``."""

    def __init__(self, num_classes: int, in_channels: int = 3, channels: int = CHANNELS,
                 cells_per_stage: int = CELLS_PER_STAGE) -> None:
        super().__init__()
        layers = supernet_layers(channels, cells_per_stage)
        c_prev = layers[0][0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_prev, 3, padding=1, bias=False), nn.BatchNorm2d(c_prev))
        self.cells = nn.ModuleList()
        for c_out, reduction in layers:
            self.cells.append(ResNetBasicblock(c_prev, c_out) if reduction else SearchCell(c_prev, c_out))
            c_prev = c_out
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev, affine=False, track_running_stats=False), nn.ReLU())
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c_prev, num_classes)
        self.layers = layers
        self.num_classes, self.in_channels = num_classes, in_channels

    def forward(self, x: torch.Tensor, choice: EdgeChoice) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        k = 0
        for cell in self.cells:
            if isinstance(cell, SearchCell):
                x = cell(x, choice, choice.per_cell[k] if choice.per_cell else choice.index)
                k += 1
            else:
                x = cell(x)
        features = self.global_pooling(self.lastact(x))
        return features, self.classifier(features)

    @property
    def num_cells(self) -> int:
        return sum(isinstance(c, SearchCell) for c in self.cells)


def discrete_network(supernet: TopologySupernet, arch: str) -> TinyNetwork:
    """The network of ``arch`` carrying the supernet's weights on its path (its BNs' affine weights at
    their identity init, as the supernet's edges have none): what "the supernet restricted to an arch"
    means, made a module (with the supernet's skeleton: the benchmark's unless N or C were changed)."""
    ops = get_space("tss").parse(arch)
    net = TinyNetwork(ops, supernet.layers, supernet.num_classes, supernet.in_channels)
    state = {}
    for name, value in supernet.state_dict().items():
        parts = name.split(".")
        if parts[0] == "cells" and parts[2] == "edges":
            edge, op = int(parts[3]), int(parts[4])
            if OPS[op] != ops[edge] or (parts[-1] == "bias" and parts[-3] == "op" and parts[-2] == "1"):
                continue  # an edge conv's bias: the network's conv has none, and BN on batch statistics cancels it
            name = ".".join(["cells", parts[1], "layers", parts[3], *parts[5:]])
        state[name] = value
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    # what the supernet lacks is BN affine weights and running statistics: left at their init
    assert all(m.rsplit(".", 1)[-1] in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
               for m in missing), missing
    return net
