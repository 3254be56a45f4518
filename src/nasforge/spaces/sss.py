"""NATS-Bench's size search space (SSS).

Five layers (cell, residual reduction, cell, residual reduction, cell), every
cell fixed to ``FIXED_CELL``; layer i outputs C_i channels, C_i in
{8, 16, ..., 64}. Index order is NATS-Bench's: nested loops over the
candidates with the first layer outermost, so index 0 is ``8:8:8:8:8`` and the
index is simply the channel tuple read as a base-8 number.
"""

from __future__ import annotations

from collections.abc import Iterator

CHANNELS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64)
NUM_LAYERS = 5
FIXED_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
_EXPECTED = (
    f"expected an SSS arch string of {NUM_LAYERS} channel counts joined by ':', "
    f"each one of {list(CHANNELS)}, e.g. '64:64:64:64:64'"
)


def parse_arch(arch: str) -> tuple[int, ...]:
    """Per-layer channels of an SSS string; ValueError naming the expected form otherwise."""
    if not isinstance(arch, str):
        raise ValueError(f"{_EXPECTED}; got {type(arch).__name__} {arch!r}")
    parts = arch.strip().split(":")
    if len(parts) != NUM_LAYERS or not all(p.isdigit() and int(p) in CHANNELS for p in parts):
        raise ValueError(f"{_EXPECTED}; got {arch!r}")
    return tuple(int(p) for p in parts)


def format_arch(channels: tuple[int, ...]) -> str:
    return ":".join(str(c) for c in channels)


class SizeSpace:
    """The 32,768 SSS channel configurations in NATS-Bench's index order."""

    name = "sss"
    channels = CHANNELS

    def __len__(self) -> int:
        return len(CHANNELS) ** NUM_LAYERS

    def __iter__(self) -> Iterator[str]:
        return (self.arch(i) for i in range(len(self)))

    def arch(self, index: int) -> str:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self):
            raise ValueError(f"expected an SSS index, an integer in [0, {len(self) - 1}]; got {index!r}")
        digits = []
        for _ in range(NUM_LAYERS):
            index, d = divmod(index, len(CHANNELS))
            digits.append(CHANNELS[d])
        return format_arch(tuple(reversed(digits)))

    def index(self, arch: str) -> int:
        i = 0
        for c in parse_arch(arch):
            i = i * len(CHANNELS) + CHANNELS.index(c)
        return i
