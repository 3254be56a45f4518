"""NATS-Bench's size search space (SSS).

Five layers (cell, residual reduction, cell, residual reduction, cell), every
cell fixed to ``FIXED_CELL``; layer i outputs C_i channels, C_i in
{8, 16, ..., 64}. Index order is NATS-Bench's: nested loops over the
candidates with the first layer outermost, so index 0 is ``8:8:8:8:8`` and the
index is simply the channel tuple read as a base-8 number.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.errors import InputError
from nasforge.spaces import tss
from nasforge.spaces.space import Layers, Space

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
        raise InputError(f"{_EXPECTED}; got {type(arch).__name__} {arch!r}")
    parts = arch.strip().split(":")
    if len(parts) != NUM_LAYERS or not all(p.isdigit() and int(p) in CHANNELS for p in parts):
        raise InputError(f"{_EXPECTED}; got {arch!r}")
    return tuple(int(p) for p in parts)


def format_arch(channels: tuple[int, ...]) -> str:
    return ":".join(str(c) for c in channels)


REDUCTIONS = (False, True, False, True, False)  # cell, residual reduction, cell, residual reduction, cell


class SizeSpace(Space):
    """The 32,768 SSS channel configurations in NATS-Bench's index order."""

    name = "sss"
    values = CHANNELS
    channels = CHANNELS
    pads_groups = True

    def __len__(self) -> int:
        return len(CHANNELS) ** NUM_LAYERS

    def arch(self, index: int) -> str:
        index = self._check_index(index)
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

    def parse(self, arch: str) -> tuple[int, ...]:
        return parse_arch(arch)

    def format(self, decisions: Sequence) -> str:
        return format_arch(tuple(decisions))

    def skeleton(self, arch: str) -> tuple[tuple[str, ...], Layers]:
        return tss.parse_arch(FIXED_CELL), list(zip(parse_arch(arch), REDUCTIONS, strict=True))

    def net_config(self, arch: str, num_classes: int) -> dict:
        return {"name": "infer.shape.tiny", "channels": format_arch(parse_arch(arch)), "genotype": FIXED_CELL,
                "num_classes": num_classes}

    def widest(self, archs: Sequence[str]) -> str:
        return format_arch(tuple(max(c) for c in zip(*(parse_arch(a) for a in archs), strict=True)))
