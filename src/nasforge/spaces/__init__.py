"""Search spaces: every architecture of NATS-Bench's TSS and SSS, by NATS-Bench's indices.

Each is a ``Space`` (``space.py``): what a phase needs of a space is a method
of it, so no phase branches on the space's name, and a new space is one class
registered here.
"""

from __future__ import annotations

from functools import cache

from nasforge.errors import InputError
from nasforge.spaces.space import Layers, Space
from nasforge.spaces.sss import SizeSpace
from nasforge.spaces.tss import TopologySpace

SPACES: dict[str, type[Space]] = {"tss": TopologySpace, "sss": SizeSpace}
SPACE_NAMES = tuple(SPACES)


def get_space(name: str | Space) -> Space:
    """The search space called ``name`` ("tss" or "sss"); one shared instance each (a Space is returned as is)."""
    if isinstance(name, Space):
        return name
    key = name.lower() if isinstance(name, str) else name
    if key not in SPACE_NAMES:
        raise InputError(f"unknown search space {name!r}: expected one of {list(SPACE_NAMES)}")
    return _space(key)


@cache
def _space(key: str) -> Space:
    # Shared instances: TSS caches its 15,625 strings and isomorphism classes once.
    return SPACES[key]()


__all__ = ["SPACES", "SPACE_NAMES", "Layers", "SizeSpace", "Space", "TopologySpace", "get_space"]
