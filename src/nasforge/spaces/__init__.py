"""Search spaces: every architecture of NATS-Bench's TSS and SSS, by NATS-Bench's indices."""

from __future__ import annotations

from functools import cache

from nasforge.spaces.sss import SizeSpace
from nasforge.spaces.tss import TopologySpace

Space = TopologySpace | SizeSpace
SPACE_NAMES = ("tss", "sss")


def get_space(name: str) -> Space:
    """The search space called ``name`` ("tss" or "sss"); one shared instance each."""
    key = name.lower() if isinstance(name, str) else name
    if key not in SPACE_NAMES:
        raise ValueError(f"unknown search space {name!r}: expected one of {list(SPACE_NAMES)}")
    return _space(key)


@cache
def _space(key: str) -> Space:
    # Shared instances: TSS caches its 15,625 strings and isomorphism classes once.
    return TopologySpace() if key == "tss" else SizeSpace()


__all__ = ["SPACE_NAMES", "SizeSpace", "Space", "TopologySpace", "get_space"]
