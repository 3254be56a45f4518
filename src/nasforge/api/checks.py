"""What a release's tables must hold before a query may answer from them.

A release that passes ``verify`` matches its own manifest, and nothing more:
anyone can rewrite a table and its hash together. So opening a release also
checks that its tables are what nasforge writes (the columns and types, one
row per (dataset, budget, arch), accuracies in 0..100, costs and seconds
finite and positive) and refuses otherwise, naming the file and the first rows
at fault. A diverged run is the one place non-finite numbers belong: its
losses and accuracies are NaN and ``diverged`` says why.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl

from nasforge.release.manifest import ReleaseError
from nasforge.schema import ARCH_SCHEMA, ARCH_TIMES_SCHEMA, METRICS

FIX = "the release was altered or not built by nasforge; fetch the published release again or rebuild it"


def check_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType], path: Path) -> None:
    missing = [c for c in schema if c not in frame.columns]
    extra = [c for c in frame.columns if c not in schema]
    wrong = [f"{c} is {frame.schema[c]}, expected {t}" for c, t in schema.items()
             if c in frame.columns and frame.schema[c] != t]
    if missing or extra or wrong:
        parts = ([f"missing columns {missing}"] if missing else []) + ([f"unknown columns {extra}"] if extra else []) + wrong
        raise ReleaseError(f"{path}: {'; '.join(parts)}; {FIX}")


def _refuse(frame: pl.DataFrame, bad: pl.Expr, what: str, path: Path) -> None:
    rows = frame.filter(bad)
    if rows.height:
        sample = rows.select(c for c in ("dataset", "hp", "arch_index") if c in rows.columns).head(3).rows()
        raise ReleaseError(f"{path}: {rows.height} row(s) {what} (first: {sample}); {FIX}")


def _non_finite(column: str) -> pl.Expr:
    return pl.col(column).is_not_null() & ~pl.col(column).is_finite()


def check_archs(frame: pl.DataFrame, path: Path, space: str) -> None:
    """The per-arch table: schema, keys, value ranges, and arch strings that are ``space``'s (the manifest
    says which space; the table must agree). Every release gets every check, built or imported: the checks
    follow from the tables, never from a manifest field anyone could add (an import refuses a source's
    out-of-range value when it is read). Costs may be 0: NAS-Bench-201 v1.0 recorded no FLOPs."""
    from nasforge.spaces import get_space

    check_schema(frame, ARCH_SCHEMA, path)
    names = _space_names(space)
    space_size = len(get_space(space))
    _refuse(frame, pl.struct("dataset", "hp", "arch_index").is_duplicated(), "repeat a (dataset, hp, arch_index)", path)
    _refuse(frame, ~pl.col("hp").str.contains(r"^[0-9]+$") | pl.col("hp").is_null(), "have a budget hp that is not digits", path)
    _refuse(frame, ~pl.col("arch_index").is_between(0, space_size - 1) | ~pl.col("canonical_index").is_between(0, space_size - 1),
            f"have an arch index outside 0..{space_size - 1}", path)
    expected = names.gather(frame["arch_index"])
    _refuse(frame.with_columns(expected=expected), pl.col("arch") != pl.col("expected"),
            f"name an arch that is not the {space} space's arch of that index (the manifest says space {space!r})", path)
    for column in ("params", "flops"):
        _refuse(frame, ~(pl.col(column).is_finite() & (pl.col(column) >= 0)), f"have {column} that is not finite and >= 0", path)
    _refuse(frame, (pl.col("n_seeds") < 1) | (pl.col("seeds").list.len() != pl.col("n_seeds"))
            | (pl.col("seeds").list.n_unique() != pl.col("n_seeds")), "have a seed list that disagrees with n_seeds", path)
    for m in METRICS:
        seeds = f"{m}_seeds"
        _refuse(frame, pl.col(seeds).list.len() != pl.col("n_seeds"), f"have {seeds} of another length than seeds", path)
        low, high = (0.0, 100.0) if m.endswith("_acc") else (0.0, float("inf"))
        values = frame.select("diverged", "dataset", "hp", "arch_index", pl.col(seeds).alias("v")).explode("v").vstack(
            frame.select("diverged", "dataset", "hp", "arch_index", pl.col(f"{m}_mean").alias("v")))
        _refuse(values, pl.col("v").is_finite() & ~pl.col("v").is_between(low, high),
                f"have {m} outside {low:g}..{high:g}", path)
        _refuse(values, _non_finite("v") & ~pl.col("diverged"), f"have a non-finite {m} but are not marked diverged", path)
        _refuse(frame, pl.col(f"{m}_std") < 0, f"have a negative {m}_std", path)


@cache
def _space_names(space: str) -> pl.Series:
    from nasforge.spaces import get_space

    return pl.Series(list(get_space(space)), dtype=pl.String)


def check_times(frame: pl.DataFrame, path: Path) -> None:
    """The measured seconds a simulated-time search charges: finite and positive, or it never ends."""
    check_schema(frame, ARCH_TIMES_SCHEMA, path)
    _refuse(frame, pl.struct("dataset", "hp", "arch_index").is_duplicated(), "repeat a (dataset, hp, arch_index)", path)
    for column in ("train_seconds_total", "train_seconds_per_epoch", "eval_seconds_total", "eval_seconds_per_epoch"):
        _refuse(frame, ~(pl.col(column).is_finite() & (pl.col(column) > 0)), f"have {column} that is not finite and positive", path)
    for column in ("latency_bs1_ms", "latency_bs256_ms"):
        _refuse(frame, pl.col(column).is_not_null() & ~(pl.col(column).is_finite() & (pl.col(column) > 0)),
                f"have {column} that is not finite and positive", path)
