"""The plan phase: which architectures are trained, and in which shard.

Shards are static (their count comes from params.yaml, so the whole DAG is
known before anything runs) and balanced by cost: archs are dealt out
heaviest first to the currently lightest shard (longest-processing-time
scheduling on FLOPs), so no shard job runs far longer than the others. The
assignment is a pure function of the sample and the shard count.
"""

from __future__ import annotations

import heapq
import random

import polars as pl

from nasforge.models import cost
from nasforge.spaces import get_space

PLAN_SCHEMA = {"arch_index": pl.Int64, "arch": pl.String, "flops": pl.Float64, "shard": pl.Int64}


def sample_archs(space: str, archs: int | str, sample_seed: int = 0, include: list[str] | None = None) -> list[int]:
    """``include`` (always) plus a fixed random fill up to ``archs`` indices, or every arch for "all"."""
    sp = get_space(space)
    if archs == "all":
        return list(range(len(sp)))
    chosen = list(dict.fromkeys(sp.index(a) for a in include or []))
    if archs < len(chosen):
        raise ValueError(f"plan.archs is {archs} but plan.include already names {len(chosen)} archs")
    if archs > len(sp):
        raise ValueError(f"plan.archs is {archs} but the {space} space holds only {len(sp)}")
    rest = [i for i in range(len(sp)) if i not in set(chosen)]
    chosen += random.Random(sample_seed).sample(rest, archs - len(chosen))
    return sorted(chosen)


def assign_shards(space: str, indices: list[int], shards: int) -> pl.DataFrame:
    """Longest-processing-time assignment of archs to ``shards`` by FLOPs."""
    if shards < 1 or shards > len(indices):
        raise ValueError(f"plan.shards must be between 1 and the number of archs ({len(indices)}); got {shards}")
    sp = get_space(space)
    flops = {i: cost(space, sp.arch(i))["flops"] for i in indices}
    load = [(0.0, k) for k in range(shards)]  # (FLOPs so far, shard)
    shard_of = {}
    for i in sorted(indices, key=lambda i: (-flops[i], i)):
        total, k = heapq.heappop(load)
        shard_of[i] = k
        heapq.heappush(load, (total + flops[i], k))
    rows = [{"arch_index": i, "arch": sp.arch(i), "flops": flops[i], "shard": shard_of[i]} for i in sorted(indices)]
    return pl.DataFrame(rows, schema=PLAN_SCHEMA)


def make_plan(space: str, archs: int | str, shards: int, sample_seed: int = 0,
              include: list[str] | None = None) -> pl.DataFrame:
    return assign_shards(space, sample_archs(space, archs, sample_seed, include), shards)
