"""The aggregate phase: every shard of a space into the benchmark's tables (polars).

Deterministic, under ``results/aggregate/{space}/``:
- ``epochs.parquet``: one row per (dataset, hp, arch, seed, epoch), as trained.
- ``archs.parquet``: one row per (dataset, hp, arch): final-epoch metrics per
  seed (list columns aligned with ``seeds``), their mean and sample std over
  seeds, the canonical (isomorphism) form, params and FLOPs.
- ``protocols.json``: per budget, the epochs and hyper-parameters its shards
  recorded training under (every shard must agree with the configuration).

Measured, under ``results/measured/aggregate/{space}/``:
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
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from nasforge.data.registry import get_dataset
from nasforge.errors import InputError
from nasforge.files import read_checked, write_checked
from nasforge.models.cost import cost
from nasforge.paths import PROTOCOLS, RESULTS, Results
from nasforge.protocol import Protocol
from nasforge.schema import ARCH_KEYS, EPOCH_KEYS, METRICS, epochs_of
from nasforge.spaces import get_space
from nasforge.tables import read_table, read_table_and_metadata, write_table
from nasforge.weights import WEIGHTS_DIR, WEIGHTS_TABLE, WeightsWriter


class CoverageError(InputError):
    """The shards do not cover the plan exactly; the message lists what is missing or doubled."""


@dataclass(frozen=True)
class ShardSet:
    """The shards a configuration trains, and where they lie (``nasforge.paths``)."""

    space: str
    datasets: list[str]
    budgets: list[str]
    seeds: list[int]
    shards: int
    protocols: dict[str, dict]  # per budget, what its shards must record: {"epochs": budget, "protocol": {...}}
    results: Results = RESULTS
    weights: bool = False  # train.save_weights: every shard kept its archs' trained weights

    @classmethod
    def from_params(cls, params: dict, results: Results = RESULTS) -> ShardSet:
        t = params["train"]
        protocols = {hp: {"epochs": epochs_of(hp), "protocol": Protocol.nats(hp).with_overrides(t["protocol"]).as_dict()}
                     for hp in t["budgets"]}
        return cls(params["space"], list(params["datasets"]), list(t["budgets"]), list(t["seeds"]),
                   params["plan"]["shards"], protocols, results, bool(t.get("save_weights", False)))

    @property
    def epochs(self) -> dict[str, int]:
        """Epochs trained per budget: the budget plus the protocol's warm-up."""
        return {hp: r["epochs"] + r["protocol"]["warmup"] for hp, r in self.protocols.items()}

    def all_shards(self, kind: str = "") -> list[Path]:
        return [Path(self.results.shard(self.space, d, h, s, k, kind)) for d in self.datasets for h in self.budgets
                for s in self.seeds for k in range(self.shards)]


SHARD_HINT = "rerun its train job (snakemake --forcerun train, or `nasforge pipeline` after deleting it)"


def _read_all(paths: list[Path], metadata_key: str | None = None) -> tuple[pl.DataFrame, list]:
    """Every shard (each checked against the sha256 its train job wrote) and, with
    ``metadata_key``, the distinct values of that metadata key, in a fixed order."""
    frame, metadata = _read_shards(paths)
    return frame, _distinct(metadata, metadata_key) if metadata_key else []


def _distinct(metadata: list[dict], key: str) -> list:
    """The distinct values of one metadata key over the shards, in a fixed order."""
    return [json.loads(v) for v in sorted({json.dumps(meta.get(key), sort_keys=True) for meta in metadata})]


def _read_shards(paths: list[Path]) -> tuple[pl.DataFrame, list[dict]]:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        listing = "\n".join(f"  {p}" for p in missing)
        raise CoverageError(f"{len(missing)} shard file(s) missing (run their train jobs):\n{listing}")
    frames, metadata = [], []
    for path in paths:
        frame, meta = read_table_and_metadata(path, SHARD_HINT)
        frames.append(frame)
        metadata.append(meta)
    return pl.concat(frames), metadata


def protocols(paths: list[Path], metadata: list[dict], expected: dict[str, dict]) -> dict[str, dict]:
    """The protocol each budget was trained under, as its shards recorded it: ``{hp: {"epochs",
    "protocol"}}``. Every shard of a budget must record the configuration's protocol; a shard
    trained under another (an older params.yaml, a hand-run job) is named, not averaged in."""
    found: dict[str, dict] = {}
    problems = []
    for path, meta in zip(paths, metadata, strict=True):
        job = meta.get("job")
        if not job:
            problems.append(f"  {path}: records no training job (not written by `nasforge train-shard`)")
            continue
        hp, record = job.get("hp"), {"epochs": job.get("epochs"), "protocol": job.get("protocol")}
        if hp not in expected or record != expected[hp]:
            problems.append(f"  {path}: trained hp {hp} with {record}, the configuration says "
                            f"{expected.get(hp, 'no such budget')}")
        found.setdefault(hp, record)
    if problems:
        raise CoverageError("shards whose recorded protocol is not the configuration's (rerun them):\n"
                            + "\n".join(problems[:20]))
    return dict(sorted(found.items(), key=lambda item: int(item[0])))


def check_coverage(epochs: pl.DataFrame, plan: pl.DataFrame, shards: ShardSet) -> None:
    """Every (dataset, hp, seed) holds each planned arch for every epoch, exactly once."""
    dupes = epochs.filter(pl.struct(EPOCH_KEYS).is_duplicated()).select(EPOCH_KEYS).unique().sort(EPOCH_KEYS)
    if dupes.height:
        raise CoverageError(f"{dupes.height} (dataset, hp, arch, seed, epoch) rows appear more than once "
                            f"(a shard trained twice?):\n{dupes.head(20)}")
    planned = set(plan["arch_index"].to_list())
    problems = []
    for (dataset, hp, seed), group in epochs.group_by(["dataset", "hp", "seed"], maintain_order=True):
        epochs_needed = shards.epochs[hp]
        counts = group.group_by("arch_index").len()
        present = set(counts["arch_index"].to_list())
        short = counts.filter(pl.col("len") != epochs_needed)["arch_index"].to_list()
        if planned - present:
            problems.append(f"{dataset} hp{hp} seed{seed}: missing archs {sorted(planned - present)}")
        if present - planned:
            problems.append(f"{dataset} hp{hp} seed{seed}: archs not in the plan {sorted(present - planned)}")
        if short:
            problems.append(f"{dataset} hp{hp} seed{seed}: archs without all {epochs_needed} epochs {sorted(short)}")
    expected = {(d, h, s) for d in shards.datasets for h in shards.budgets for s in shards.seeds}
    found = set(epochs.select("dataset", "hp", "seed").unique().iter_rows())
    for d, h, s in sorted(expected - found):
        problems.append(f"{d} hp{h} seed{s}: no rows at all; missing archs {sorted(planned)}")
    if problems:
        raise CoverageError("the shards do not cover the plan:\n" + "\n".join(f"  {p}" for p in problems))


def arch_table(epochs: pl.DataFrame, space: str, costs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Final-epoch metrics per (dataset, hp, arch): per-seed lists, mean, std; plus cost and canonical form.

    Params and FLOPs come from nasforge's cost model, or from ``costs`` (dataset, hp, arch_index,
    params, flops) when the benchmark recorded its own, as an imported NATS-Bench does."""
    final = epochs.filter(pl.col("epoch") == pl.col("epoch").max().over([*ARCH_KEYS, "seed"])).sort([*ARCH_KEYS, "seed"])
    stats = []
    for m in METRICS:
        stats += [pl.col(m).alias(f"{m}_seeds"), pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std().alias(f"{m}_std")]
    table = final.group_by(ARCH_KEYS, maintain_order=True).agg(
        pl.col("space").first(), pl.col("arch").first(), pl.col("seed").alias("seeds"), pl.len().alias("n_seeds"),
        pl.col("diverged").any(), *stats,
    )
    sp = get_space(space)
    # canonical_index: the lowest isomorphic index (TSS), the arch itself where none exist (SSS)
    canonical = [sp.canonical_index(i) for i in table["arch_index"].to_list()]
    extra = pl.DataFrame({"canonical_index": canonical, "canonical": [sp.arch(c) for c in canonical]},
                         schema={"canonical_index": pl.Int64, "canonical": pl.String})
    if costs is None:
        rows = []
        for dataset, arch in table.select("dataset", "arch").iter_rows():
            spec = get_dataset(dataset)
            c = cost(space, arch, spec.num_classes, spec.size, spec.channels)
            rows.append((c["params"], c["flops"]))
        extra = extra.with_columns(pl.Series("params", [r[0] for r in rows], pl.Float64),
                                   pl.Series("flops", [r[1] for r in rows], pl.Float64))
    else:
        given = table.select(ARCH_KEYS).join(costs.select(*ARCH_KEYS, "params", "flops"), on=ARCH_KEYS, how="left",
                                             maintain_order="left")
        extra = extra.with_columns(given["params"], given["flops"])
    ordered = ["space", "dataset", "hp", "arch_index", "arch", "canonical_index", "canonical", "params", "flops",
               "n_seeds", "seeds", "diverged"]
    return pl.concat([table, extra], how="horizontal").select(ordered + [c for c in table.columns if c not in ordered])


def aggregate(shards: ShardSet, plan_path: Path, out: Path, measured_out: Path) -> dict[str, Path]:
    """Write the benchmark's tables for one space; return their paths by name."""
    plan = read_table(plan_path, "rerun the plan phase (snakemake phase_plan)")
    paths = shards.all_shards()
    epochs, metadata = _read_shards(paths)
    environments = _distinct(metadata, "environment")
    check_coverage(epochs, plan, shards)
    trained = protocols(paths, metadata, shards.protocols)
    meta = {"environments": environments, "space": shards.space}
    written = {
        "protocols": write_checked(out / PROTOCOLS, (json.dumps(trained, indent=2, sort_keys=True) + "\n").encode()),
        "epochs": write_table(epochs, out / "epochs.parquet", EPOCH_KEYS, meta),
        "archs": write_table(arch_table(epochs, shards.space), out / "archs.parquet", ARCH_KEYS, meta),
    }
    times, hosts = _read_all(shards.all_shards("timing"), "host")
    latency, _ = _read_all(shards.all_shards("cost"))
    written["times"] = write_table(times, measured_out / "times.parquet", EPOCH_KEYS, {"hosts": hosts})
    written["latency"] = write_table(latency, measured_out / "latency.parquet", ["dataset", "arch_index", "seed"])
    written["arch_times"] = write_table(arch_times(times, latency), measured_out / "arch_times.parquet", ARCH_KEYS)
    if shards.weights:
        written["weights"] = gather_weights(shards, epochs, out)
    return written


def gather_weights(shards: ShardSet, epochs: pl.DataFrame, out: Path) -> Path:
    """Every shard's trained weights into ``out/weights/{sha256}.safetensors`` and ``out/weights.parquet``;
    each trained run must have its file (each checked against the sha256 its train job wrote)."""
    shutil.rmtree(out / WEIGHTS_DIR, ignore_errors=True)
    writer, missing = WeightsWriter(out), []
    for d in shards.datasets:
        for h in shards.budgets:
            for s in shards.seeds:
                trained = epochs.filter((pl.col("dataset") == d) & (pl.col("hp") == h) & (pl.col("seed") == s))
                held = {}
                for k in range(shards.shards):
                    folder = Path(shards.results.shard_weights(shards.space, d, h, s, k))
                    held.update({int(p.name.split(".")[0]): p for p in folder.glob("*.safetensors")})
                for index in sorted(trained["arch_index"].unique().to_list()):
                    if index not in held:
                        missing.append(f"  {d} hp{h} seed {s}: arch {index}")
                        continue
                    writer.add_encoded(d, h, index, s, read_checked(held[index], SHARD_HINT), str(held[index]))
    if missing:
        raise CoverageError("train.save_weights is on, but these runs kept no weights (rerun their train jobs):\n"
                            + "\n".join(missing[:20]))
    writer.finish(out)
    return out / WEIGHTS_TABLE


def arch_times(times: pl.DataFrame, latency: pl.DataFrame) -> pl.DataFrame:
    """Median over seeds of each arch's measured seconds (per epoch and total) and latency."""
    per_seed = times.group_by([*ARCH_KEYS, "seed"]).agg(
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
