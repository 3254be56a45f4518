"""The plan phase: which architectures are trained, and in which shard.

Shards are static (their count comes from params.yaml, so the whole DAG is
known before anything runs) and balanced by cost: archs are dealt out
heaviest first to the currently lightest shard (longest-processing-time
scheduling on FLOPs), so no shard job runs far longer than the others. The
assignment is a pure function of the sample and the shard count.

For the fused engine each shard is then packed into groups trained as one
computation (``pack_groups``): archs sorted so that neighbours share most ops
(TSS) or widths (SSS), so a group needs few per-edge gathers or little
padding, then cut greedily wherever the estimated training memory would pass
the budget or the group its maximum size.
"""

from __future__ import annotations

import heapq
import random

import polars as pl

from nasforge.errors import InputError
from nasforge.models.cost import cost, train_memory_bytes
from nasforge.schema import PLAN_SCHEMA
from nasforge.spaces import get_space

GROUP_DEFAULTS = {"memory_gb": 60.0, "max_size": 64, "batch_size": 256}


def sample_archs(space: str, archs: int | str, sample_seed: int = 0, include: list[str] | None = None) -> list[int]:
    """``include`` (always) plus a fixed random fill up to ``archs`` indices, or every arch for "all"."""
    sp = get_space(space)
    if archs == "all":
        return list(range(len(sp)))
    chosen = list(dict.fromkeys(sp.index(a) for a in include or []))
    if archs < len(chosen):
        raise InputError(f"plan.archs is {archs} but plan.include already names {len(chosen)} archs")
    if archs > len(sp):
        raise InputError(f"plan.archs is {archs} but the {space} space holds only {len(sp)}")
    rest = [i for i in range(len(sp)) if i not in set(chosen)]
    chosen += random.Random(sample_seed).sample(rest, archs - len(chosen))
    return sorted(chosen)


def assign_shards(space: str, indices: list[int], shards: int) -> pl.DataFrame:
    """Longest-processing-time assignment of archs to ``shards`` by FLOPs."""
    if shards < 1 or shards > len(indices):
        raise InputError(f"plan.shards must be between 1 and the number of archs ({len(indices)}); got {shards}")
    sp = get_space(space)
    flops = {i: cost(space, sp.arch(i))["flops"] for i in indices}
    load = [(0.0, k) for k in range(shards)]  # (FLOPs so far, shard)
    shard_of = {}
    for i in sorted(indices, key=lambda i: (-flops[i], i)):
        total, k = heapq.heappop(load)
        shard_of[i] = k
        heapq.heappush(load, (total + flops[i], k))
    rows = [{"arch_index": i, "arch": sp.arch(i), "flops": flops[i], "shard": shard_of[i]} for i in sorted(indices)]
    return pl.DataFrame(rows, schema={k: v for k, v in PLAN_SCHEMA.items() if k != "group"})


def group_memory_bytes(space: str, archs: list[str], batch: int) -> int:
    """A fused group's estimated memory: TSS members add up; SSS members are padded to the
    group's widest layer, so each costs what the widest arch costs."""
    sp = get_space(space)
    if sp.pads_groups:
        return len(archs) * train_memory_bytes(space, sp.widest(archs), batch)
    return sum(train_memory_bytes(space, a, batch) for a in archs)


def pack_groups(space: str, indices: list[int], memory_gb: float = GROUP_DEFAULTS["memory_gb"],
                max_size: int = GROUP_DEFAULTS["max_size"], batch_size: int = GROUP_DEFAULTS["batch_size"]
                ) -> list[list[int]]:
    """Groups of archs for the fused engine, each under ``memory_gb`` (estimated, 32 px input)."""
    if memory_gb <= 0 or max_size < 1:
        raise InputError(f"group packing needs memory_gb > 0 and max_size >= 1; got {memory_gb}, {max_size}")
    sp = get_space(space)
    budget = memory_gb * 2**30
    groups: list[list[int]] = []
    # Neighbours in the sort share most decisions (ops or widths), so a group needs few gathers or little padding.
    for i in sorted(indices, key=lambda i: (sp.parse(sp.arch(i)), i)):
        group = groups[-1] if groups else None
        if (group is None or len(group) >= max_size
                or group_memory_bytes(space, [sp.arch(j) for j in [*group, i]], batch_size) > budget):
            groups.append([i])
        else:
            group.append(i)
    return groups


def make_plan(space: str, archs: int | str, shards: int, sample_seed: int = 0,
              include: list[str] | None = None, groups: dict | None = None) -> pl.DataFrame:
    """The plan table: shard by LPT on FLOPs, then fused groups within each shard."""
    table = assign_shards(space, sample_archs(space, archs, sample_seed, include), shards)
    settings = {**GROUP_DEFAULTS, **(groups or {})}
    group_of = {}
    for k in range(shards):
        members = table.filter(pl.col("shard") == k)["arch_index"].to_list()
        for g, group in enumerate(pack_groups(space, members, **settings)):
            group_of.update({i: g for i in group})
    return table.with_columns(group=pl.col("arch_index").replace_strict(group_of, return_dtype=pl.Int64))
