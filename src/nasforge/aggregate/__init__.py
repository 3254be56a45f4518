"""The aggregate phase: every shard of a space into the benchmark's tables (polars).

Deterministic, under ``results/bench/{space}/``:
- ``epochs.parquet``: one row per (dataset, hp, arch, seed, epoch), as trained.
- ``archs.parquet``: one row per (dataset, hp, arch): final-epoch metrics per
  seed (list columns aligned with ``seeds``), their mean and sample std over
  seeds, the canonical (isomorphism) form, params and FLOPs.

Measured, under ``results/measured/bench/{space}/``:
- ``times.parquet``: train/eval seconds per (dataset, hp, arch, seed, epoch).
- ``latency.parquet``: inference latency per (dataset, arch, seed) measurement.
- ``arch_times.parquet``: per (dataset, hp, arch), the median over seeds of
  train/eval seconds per epoch and in total, and of latency: what the query
  API and simulated-time search read.

The shards must cover the plan exactly: a missing shard file, a missing arch
or a duplicated row stops with an error that lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from nasforge.data.registry import get_dataset
from nasforge.models import cost
from nasforge.spaces import get_space
from nasforge.tables import read_table, read_table_and_metadata, write_table
from nasforge.train.protocol import trained_epochs

METRICS = ["train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc", "valtest_loss",
           "valtest_acc"]
EPOCH_KEYS = ["dataset", "hp", "arch_index", "seed", "epoch"]
ARCH_KEYS = ["dataset", "hp", "arch_index"]


class CoverageError(ValueError):
    """The shards do not cover the plan exactly; the message lists what is missing or doubled."""


@dataclass(frozen=True)
class Layout:
    space: str
    datasets: list[str]
    budgets: list[str]
    seeds: list[int]
    shards: int
    epochs: dict[str, int]  # epochs trained per budget: the budget plus any warm-up
    train_root: Path = Path("results/train")
    measured_root: Path = Path("results/measured/train")

    @classmethod
    def from_params(cls, params: dict, results: Path = Path("results")) -> Layout:
        """Where the shards of a configuration lie under ``results``."""
        t = params["train"]
        return cls(params["space"], list(params["datasets"]), list(t["budgets"]), list(t["seeds"]),
                   params["plan"]["shards"], trained_epochs(params), results / "train", results / "measured/train")

    def shard(self, dataset: str, hp: str, seed: int, k: int, kind: str = "") -> Path:
        rel = Path(self.space) / dataset / f"hp{hp}" / f"seed{seed}"
        if kind:
            return Path(self.measured_root) / rel / f"shard{k}.{kind}.parquet"
        return Path(self.train_root) / rel / f"shard{k}.parquet"

    def all_shards(self, kind: str = "") -> list[Path]:
        return [self.shard(d, h, s, k, kind) for d in self.datasets for h in self.budgets for s in self.seeds
                for k in range(self.shards)]


SHARD_HINT = "rerun its train job (snakemake --forcerun train_shard, or `nasforge pipeline` after deleting it)"


def _read_all(paths: list[Path], metadata_key: str | None = None) -> tuple[pl.DataFrame, list]:
    """Every shard (each checked against the sha256 its train job wrote) and, with
    ``metadata_key``, the distinct values of that metadata key, in a fixed order."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        listing = "\n".join(f"  {p}" for p in missing)
        raise CoverageError(f"{len(missing)} shard file(s) missing (run their train jobs):\n{listing}")
    frames, values = [], set()
    for path in paths:
        frame, meta = read_table_and_metadata(path, SHARD_HINT)
        frames.append(frame)
        values.add(json.dumps(meta.get(metadata_key) if metadata_key else None, sort_keys=True))
    return pl.concat(frames), [json.loads(v) for v in sorted(values)] if metadata_key else []


def check_coverage(epochs: pl.DataFrame, plan: pl.DataFrame, layout: Layout) -> None:
    """Every (dataset, hp, seed) holds each planned arch for every epoch, exactly once."""
    dupes = epochs.filter(pl.struct(EPOCH_KEYS).is_duplicated()).select(EPOCH_KEYS).unique().sort(EPOCH_KEYS)
    if dupes.height:
        raise CoverageError(f"{dupes.height} (dataset, hp, arch, seed, epoch) rows appear more than once "
                            f"(a shard trained twice?):\n{dupes.head(20)}")
    planned = set(plan["arch_index"].to_list())
    problems = []
    for (dataset, hp, seed), group in epochs.group_by(["dataset", "hp", "seed"], maintain_order=True):
        epochs_needed = layout.epochs[hp]
        counts = group.group_by("arch_index").len()
        present = set(counts["arch_index"].to_list())
        short = counts.filter(pl.col("len") != epochs_needed)["arch_index"].to_list()
        if planned - present:
            problems.append(f"{dataset} hp{hp} seed{seed}: missing archs {sorted(planned - present)}")
        if present - planned:
            problems.append(f"{dataset} hp{hp} seed{seed}: archs not in the plan {sorted(present - planned)}")
        if short:
            problems.append(f"{dataset} hp{hp} seed{seed}: archs without all {epochs_needed} epochs {sorted(short)}")
    expected = {(d, h, s) for d in layout.datasets for h in layout.budgets for s in layout.seeds}
    found = set(epochs.select("dataset", "hp", "seed").unique().iter_rows())
    for d, h, s in sorted(expected - found):
        problems.append(f"{d} hp{h} seed{s}: no rows at all; missing archs {sorted(planned)}")
    if problems:
        raise CoverageError("the shards do not cover the plan:\n" + "\n".join(f"  {p}" for p in problems))


def arch_table(epochs: pl.DataFrame, space: str) -> pl.DataFrame:
    """Final-epoch metrics per (dataset, hp, arch): per-seed lists, mean, std; plus cost and canonical form."""
    final = epochs.filter(pl.col("epoch") == pl.col("epoch").max().over(ARCH_KEYS + ["seed"])).sort(ARCH_KEYS + ["seed"])
    stats = []
    for m in METRICS:
        stats += [pl.col(m).alias(f"{m}_seeds"), pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std().alias(f"{m}_std")]
    table = final.group_by(ARCH_KEYS, maintain_order=True).agg(
        pl.col("space").first(), pl.col("arch").first(), pl.col("seed").alias("seeds"), pl.len().alias("n_seeds"),
        pl.col("diverged").any(), *stats,
    )
    sp = get_space(space)
    rows = []
    for dataset, arch_index, arch in table.select("dataset", "arch_index", "arch").iter_rows():
        spec = get_dataset(dataset)
        c = cost(space, arch, spec.num_classes, spec.size, spec.channels)
        canonical = sp.canonical_index(arch_index) if space == "tss" else arch_index
        rows.append({"params": c["params"], "flops": c["flops"], "canonical_index": canonical,
                     "canonical": sp.arch(canonical)})
    extra = pl.DataFrame(rows, schema={"params": pl.Float64, "flops": pl.Float64, "canonical_index": pl.Int64,
                                       "canonical": pl.String})
    ordered = ["space", "dataset", "hp", "arch_index", "arch", "canonical_index", "canonical", "params", "flops",
               "n_seeds", "seeds", "diverged"]
    return pl.concat([table, extra], how="horizontal").select(ordered + [c for c in table.columns if c not in ordered])


def aggregate(layout: Layout, plan_path: Path, out: Path, measured_out: Path) -> dict[str, Path]:
    """Write the benchmark's tables for one space; return their paths by name."""
    plan = read_table(plan_path, "rerun the plan phase (snakemake phase_plan)")
    epochs, environments = _read_all(layout.all_shards(), "environment")
    check_coverage(epochs, plan, layout)
    meta = {"environments": environments, "space": layout.space}
    written = {
        "epochs": write_table(epochs, out / "epochs.parquet", EPOCH_KEYS, meta),
        "archs": write_table(arch_table(epochs, layout.space), out / "archs.parquet", ARCH_KEYS, meta),
    }
    times, hosts = _read_all(layout.all_shards("timing"), "host")
    latency, _ = _read_all(layout.all_shards("cost"))
    written["times"] = write_table(times, measured_out / "times.parquet", EPOCH_KEYS, {"hosts": hosts})
    written["latency"] = write_table(latency, measured_out / "latency.parquet", ["dataset", "arch_index", "seed"])
    written["arch_times"] = write_table(arch_times(times, latency), measured_out / "arch_times.parquet", ARCH_KEYS)
    return written


def arch_times(times: pl.DataFrame, latency: pl.DataFrame) -> pl.DataFrame:
    """Median over seeds of each arch's measured seconds (per epoch and total) and latency."""
    per_seed = times.group_by(ARCH_KEYS + ["seed"]).agg(
        pl.col("train_seconds").sum().alias("train_seconds_total"), pl.col("eval_seconds").sum().alias("eval_seconds_total"),
        pl.len().alias("epochs"))
    summary = per_seed.group_by(ARCH_KEYS).agg(
        pl.col("train_seconds_total").median(), pl.col("eval_seconds_total").median(), pl.col("epochs").first())
    summary = summary.with_columns(
        (pl.col("train_seconds_total") / pl.col("epochs")).alias("train_seconds_per_epoch"),
        (pl.col("eval_seconds_total") / pl.col("epochs")).alias("eval_seconds_per_epoch"))
    lat = latency.group_by("dataset", "arch_index").agg(pl.col("latency_bs1_ms").median(),
                                                          pl.col("latency_bs256_ms").median())
    return summary.join(lat, on=["dataset", "arch_index"], how="left").drop("epochs")
