"""NATS-Bench's topology search space (TSS), identical to NAS-Bench-201.

A cell is a DAG over 4 nodes; each of its 6 edges (i -> j, i < j) carries one
of 5 operations. The arch string lists, node by node, the op on every edge
into that node: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Index order: NAS-Bench-201 enumerated the 5^6 cells as nested loops over the
edges in string order (first edge outermost, ops in ``OPS`` order), then
shuffled that list once with ``random.seed(88)``. Reproducing both steps gives
the published indices exactly (checked against the published anchors in the
tests), which is what lets a nasforge index mean the same arch as NATS-Bench's.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Sequence
from functools import cached_property

from nasforge.errors import InputError
from nasforge.spaces.space import Layers, Space

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
#: (source node, target node) of each edge, in arch-string order.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in range(1, NUM_NODES) for i in range(j))
_SHUFFLE_SEED = 88  # NAS-Bench-201's generate_meta_info; fixes every published index.
_NODE_RE = re.compile(r"^\|(?:[a-z0-9_]+~\d\|)+$")
_ZERO = "#"
CHANNELS = 16  # C of the first stage; doubled at each reduction
CELLS_PER_STAGE = 5  # N

Ops = tuple[str, ...]


def format_arch(ops: Ops) -> str:
    """The NATS-Bench string of a cell given its 6 edge ops in string order."""
    nodes, k = [], 0
    for j in range(1, NUM_NODES):
        nodes.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(nodes)


def parse_arch(arch: str) -> Ops:
    """Edge ops of a NATS-Bench TSS string; ValueError naming the expected form otherwise."""
    expected = (
        "expected a TSS arch string of 3 nodes with 1, 2 and 3 edges, e.g. "
        "'|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|', "
        f"ops from {list(OPS)}"
    )
    if not isinstance(arch, str):
        raise InputError(f"{expected}; got {type(arch).__name__} {arch!r}")
    nodes = arch.strip().split("+")
    if len(nodes) != NUM_NODES - 1 or not all(_NODE_RE.match(n) for n in nodes):
        raise InputError(f"{expected}; got {arch!r}")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        edges = node.strip("|").split("|")
        if len(edges) != j:
            raise InputError(f"{expected}; node {j} of {arch!r} has {len(edges)} edges, needs {j}")
        for i, edge in enumerate(edges):
            op, _, src = edge.partition("~")
            if op not in OPS:
                raise InputError(f"{expected}; unknown op {op!r} in {arch!r}")
            if src != str(i):
                raise InputError(f"{expected}; edge {i} of node {j} in {arch!r} must read from node {i}, not {src}")
            ops.append(op)
    return tuple(ops)


def isomorphism_key(ops: Ops) -> str:
    """A string shared by the cells NAS-Bench-201 counts as one topology.

    NAS-Bench-201's rule (its ``to_unique_str(consider_zero=True)``), kept
    exactly so that our 6,466 classes are the community's 6,466: ``none`` is a
    zero term, an op applied to a node that is exactly one zero term is zero,
    ``skip_connect`` is the identity, and a node is the sorted sum of its
    terms. Only the output node's expression is kept, so edges that cannot
    reach the output drop out. Zero terms stay in the sum, so ``x + none`` and
    ``x`` are different classes; dropping them (full algebraic reduction)
    merges further, to 4,930 classes. Every class here lies inside one of
    those, so "isomorphic archs agree" audits are conservative under this rule.
    """
    expr = {0: "0"}
    k = 0
    for j in range(1, NUM_NODES):
        terms = []
        for i in range(j):
            op = ops[k + i]
            if op == "none" or expr[i] == _ZERO:
                terms.append(_ZERO)
            elif op == "skip_connect":
                terms.append(expr[i])
            else:
                terms.append(f"({expr[i]})@{op}")
        k += j
        expr[j] = "+".join(sorted(terms))
    return expr[NUM_NODES - 1]


class TopologySpace(Space):
    """The 15,625 TSS cells in NATS-Bench's index order."""

    name = "tss"
    values = OPS
    ops = OPS

    @cached_property
    def _archs(self) -> list[str]:
        cells = list(itertools.product(OPS, repeat=len(EDGES)))
        random.Random(_SHUFFLE_SEED).shuffle(cells)
        return [format_arch(c) for c in cells]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self._archs)}

    @cached_property
    def _canonical(self) -> list[int]:
        """Index of the lowest-indexed member of each arch's isomorphism class."""
        first: dict[str, int] = {}
        out = []
        for i, a in enumerate(self._archs):
            out.append(first.setdefault(isomorphism_key(parse_arch(a)), i))
        return out

    def __len__(self) -> int:
        return len(OPS) ** len(EDGES)

    def __iter__(self) -> Iterator[str]:
        return iter(self._archs)

    def arch(self, index: int) -> str:
        return self._archs[self._check_index(index)]

    def index(self, arch: str) -> int:
        ops = parse_arch(arch)
        return self._index[format_arch(ops)]

    def parse(self, arch: str) -> Ops:
        return parse_arch(arch)

    def format(self, decisions: Sequence) -> str:
        return format_arch(tuple(decisions))

    def canonical_index(self, arch: str | int) -> int:
        """The lowest index computing the same function (NAS-Bench-201's isomorphism rule)."""
        i = self._check_index(arch) if isinstance(arch, int) else self.index(arch)
        return self._canonical[i]

    def unique_count(self) -> int:
        return len(set(self._canonical))

    def input_independent(self, arch: str) -> bool:
        return set(isomorphism_key(parse_arch(arch)).split("+")) == {_ZERO}

    def skeleton(self, arch: str) -> tuple[Ops, Layers]:
        n, c = CELLS_PER_STAGE, CHANNELS
        layers = [(c, False)] * n + [(2 * c, True)] + [(2 * c, False)] * n + [(4 * c, True)] + [(4 * c, False)] * n
        return parse_arch(arch), layers

    def net_config(self, arch: str, num_classes: int) -> dict:
        return {"name": "infer.tiny", "C": CHANNELS, "N": CELLS_PER_STAGE, "arch_str": self.arch(self.index(arch)),
                "num_classes": num_classes}
