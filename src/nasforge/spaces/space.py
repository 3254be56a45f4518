"""What every search space offers the phases, so no phase branches on a space's name.

A space is NATS-Bench's indexed list of arch strings plus the few facts the
phases need about them: each arch as one choice per decision (what a search
mutates), its canonical form (the lowest-indexed arch computing the same
function), the network skeleton it describes (cell ops and per-layer
channels, read by the cost model and the torch builder alike), and whether a
fused group of its archs pads to its widest member.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

#: (channels, is_reduction) of every layer after the stem.
Layers = list[tuple[int, bool]]


class Space(ABC):
    name: str
    #: values each decision can take, in the order the encoding numbers them
    values: tuple[Any, ...]
    #: True when a fused group of this space's archs is padded to its widest member (SSS's channel
    #: masks), so each member costs what the widest costs; False when members simply add up (TSS)
    pads_groups: bool = False

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def arch(self, index: int) -> str:
        """The arch string of a NATS-Bench index (InputError naming the range otherwise)."""

    @abstractmethod
    def index(self, arch: str) -> int:
        """The NATS-Bench index of an arch string (InputError naming the expected form otherwise)."""

    @abstractmethod
    def parse(self, arch: str) -> tuple:
        """The arch's decisions as values of ``values`` (ops, channel counts), in string order."""

    @abstractmethod
    def format(self, decisions: Sequence) -> str:
        """The arch string of a tuple of decision values."""

    @abstractmethod
    def skeleton(self, arch: str) -> tuple[tuple[str, ...], Layers]:
        """The cell's edge ops and the (channels, is_reduction) of every layer after the stem:
        one description drives both the torch module and the analytic cost model."""

    @abstractmethod
    def net_config(self, arch: str, num_classes: int) -> dict:
        """The config NATS-Bench's ``get_cell_based_tiny_net`` builds this arch from."""

    def __iter__(self) -> Iterator[str]:
        return (self.arch(i) for i in range(len(self)))

    @property
    def choices(self) -> int:
        """How many values each decision can take."""
        return len(self.values)

    def encode(self, arch: str | int) -> tuple[int, ...]:
        """The arch as one choice id per decision (what searches mutate and learn over)."""
        text = self.arch(arch) if isinstance(arch, int) else arch
        return tuple(self.values.index(v) for v in self.parse(text))

    def decode(self, code: Sequence[int]) -> str:
        return self.format(tuple(self.values[c] for c in code))

    def canonical_index(self, arch: str | int) -> int:
        """The lowest index computing the same function as ``arch``: itself unless the space has isomorphs."""
        return self._check_index(arch) if isinstance(arch, int) else self.index(arch)

    def canonical(self, arch: str | int) -> str:
        return self.arch(self.canonical_index(arch))

    def unique_count(self) -> int:
        """Distinct functions in the space (its size when no two archs are isomorphic)."""
        return len(self)

    def input_independent(self, arch: str) -> bool:
        """True when the output cannot depend on the input (every path from it is cut)."""
        return False

    def widest(self, archs: Sequence[str]) -> str:
        """The arch a padded fused group of ``archs`` trains at (only for spaces that pad)."""
        raise NotImplementedError(f"the {self.name} space does not pad fused groups")

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self):
            from nasforge.errors import InputError

            article = "an" if self.name.upper()[0] in "AEFHILMNORSX" else "a"  # as the letter is spoken
            raise InputError(f"expected {article} {self.name.upper()} index, an integer in [0, {len(self) - 1}]; "
                             f"got {index!r}")
        return index
