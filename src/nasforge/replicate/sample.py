"""Which archs an audit re-trains: a stratified sample, so a handful covers the whole release.

A uniform sample of a few archs would mostly land in the crowded middle of
the accuracy distribution; the failures an audit looks for (a broken seed, a
table joined to the wrong arch, a protocol that drifted) show as much in the
best and worst archs and in the cheap and costly ones. So the archs of one
(dataset, budget) are cut into accuracy quartiles x cost halves, shuffled
within each stratum by the audit's seed, and taken round-robin across strata.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nasforge.errors import InputError

ACCURACY_BINS = 4
COST_BINS = 2


def stratified_sample(archs: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """``n`` rows of ``archs`` (one dataset and budget, with ``test_acc_mean`` and ``flops``), spread across
    accuracy quantiles and cost, with their stratum; the same ``seed`` gives the same sample."""
    if n < 1:
        raise InputError(f"--sample {n}: an audit re-trains at least 1 arch")
    rows = archs.sort("arch_index")
    if n > rows.height:
        raise InputError(f"--sample {n}: the release holds {rows.height} archs for this dataset and budget; "
                         f"sample at most {rows.height}")
    # Diverged archs (NaN accuracy) form a stratum of their own, below every quartile: they are re-trained too.
    acc = rows["test_acc_mean"].fill_nan(None)
    acc_rank = acc.rank("ordinal").fill_null(0).to_numpy()
    held = max(int(acc.is_not_null().sum()), 1)
    acc_bin = np.where(acc.is_null().to_numpy(), -1, (acc_rank - 1) * ACCURACY_BINS // held)
    cost_rank = rows["flops"].rank("ordinal").to_numpy()
    cost_bin = (cost_rank - 1) * COST_BINS // rows.height
    rng = np.random.default_rng(seed)
    strata: dict[tuple[int, int], list[int]] = {}
    for position, key in enumerate(zip(acc_bin.tolist(), cost_bin.tolist(), strict=True)):
        strata.setdefault(key, []).append(position)
    queues = {key: [members[i] for i in rng.permutation(len(members))] for key, members in sorted(strata.items())}
    order = list(queues)
    rng.shuffle(order)  # which stratum gives first varies with the seed, not always the lowest
    chosen: list[tuple[int, tuple[int, int]]] = []
    while len(chosen) < n:
        for key in order:
            if queues[key] and len(chosen) < n:
                chosen.append((queues[key].pop(0), key))
    positions = [p for p, _ in chosen]
    return rows[positions].with_columns(
        pl.Series("accuracy_stratum", [k[0] for _, k in chosen], dtype=pl.Int64),
        pl.Series("cost_stratum", [k[1] for _, k in chosen], dtype=pl.Int64),
    ).sort("arch_index")
