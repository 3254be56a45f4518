"""NATS-Bench's per-run records (``ResultsCount`` state dicts) into nasforge's tables, streamed.

A full TSS import is about 40 million per-epoch rows: far too many Python
objects to hold at once. Archs arrive in index order; their rows are buffered
per (dataset, budget) for ``chunk`` archs at a time and spilled to part files,
and the final tables are written by concatenating the parts in key order,
which *is* the tables' sort order (dataset, hp, arch, seed, epoch), so nothing
is ever sorted or held whole. Each part becomes one parquet row group: a query
for one arch reads one group per dataset and budget.

Column mapping, per dataset (NATS-Bench's eval set names -> nasforge's splits):
``x-valid`` -> valid; ``x-test`` -> test and ``ori-test`` -> valtest where the
dataset has both (cifar100, ImageNet16-120); otherwise ``ori-test`` -> test.
"""

from __future__ import annotations

import json
import math
import shutil
from functools import cache
from pathlib import Path

import polars as pl

from nasforge.api.records import eval_sets, nats_cost
from nasforge.errors import InputError
from nasforge.files import checksum_path, sha256
from nasforge.protocol import Protocol
from nasforge.schema import (
    ARCH_KEYS,
    ARCH_TIMES_SCHEMA,
    EPOCHS_SCHEMA,
    METRICS,
    NATS_BUDGETS,
    RUN_COSTS_SCHEMA,
    RUN_KEYS,
    RUN_TIMES_SCHEMA,
)
from nasforge.spaces import get_space
from nasforge.tables import META_PREFIX, write_table

_SPLITS = ("train", "valid", "test", "valtest")
MAX_EPOCHS = 1000  # a run's epoch count sizes its rows: bounded before anything is allocated


@cache
def _keys(name: str, epochs: int) -> tuple[str, ...]:
    return tuple(f"{name}@{e}" for e in range(epochs))


@cache
def _lrs(hp: str, epochs: int) -> tuple[float | None, ...]:
    """The lr each epoch trained at under NATS-Bench's hyper-opts for ``hp`` (null for other budgets)."""
    if hp not in NATS_BUDGETS:
        return (None,) * epochs
    p = Protocol.nats(hp)
    return tuple(p.lr_at(e, 0.0, p.total_epochs(hp)) for e in range(epochs))


def _per_epoch(values, epochs: int, where: str) -> list:
    """Per-epoch values of a NATS-Bench record (a dict epoch -> value, or a list), None where absent."""
    if values is None:
        return [None] * epochs
    if isinstance(values, dict):
        return [_number(v, where) for v in map(values.get, range(epochs))]
    if isinstance(values, (list, tuple)):
        return [_number(v, where) for v in values[:epochs]] + [None] * (epochs - len(values))
    raise InputError(f"{where}: per-epoch values are a {type(values).__name__}, expected a dict or a list")


def _number(value, where: str) -> float | None:
    """A recorded number (NATS-Bench's are Python or numpy numbers, read as Python ones), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: a {type(value).__name__} where NATS-Bench records a number")
    return float(value)


def _text_list(value, where: str, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: {what} is a {type(value).__name__}, expected a list of names")
    return list(value)


class Converter:
    """Collects runs arch by arch; ``finish`` writes epochs, run_times, run_costs and archs tables."""

    def __init__(self, space: str, work: Path, chunk: int = 256) -> None:
        self.space = get_space(space)
        self.work = work
        self.chunk = chunk
        self._parts = 0
        self._pending = 0
        self._buffers: dict[tuple[str, str], dict[str, list]] = {}
        self._costs: list[tuple] = []
        self._costs_flushed = 0
        self._run_totals: list[tuple] = []
        self._archs: list[pl.DataFrame] = []
        self.eval_names: dict[str, set[str]] = {}  # per dataset, the eval sets the source recorded
        self.eval_order: dict[str, list[str]] = {}  # per dataset, their order in the first run (nats_bench answers in it)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)

    def add(self, index: int, arch: str, by_hp: dict[str, dict], where: str) -> None:
        for hp, state in sorted(by_hp.items()):
            results, dataset_seed = state["all_results"], state["dataset_seed"]
            if not all(isinstance(d, str) for d in dataset_seed):
                raise InputError(f"{where}: hp {hp}'s dataset_seed is keyed by {sorted(map(type, dataset_seed), key=str)}, "
                                 "expected dataset names")
            for dataset in sorted(dataset_seed):
                try:
                    sets = eval_sets(dataset)
                except ValueError as err:
                    raise InputError(f"{where}: {err}") from None
                seeds = dataset_seed[dataset]
                if not isinstance(seeds, (list, tuple, set)) or not all(
                        isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in seeds):
                    raise InputError(f"{where}: hp {hp}'s dataset_seed[{dataset!r}] is {type(seeds).__name__}, expected "
                                     "a list of integer seeds")
                for seed in sorted(seeds):
                    record = results.get((dataset, seed))
                    if not isinstance(record, dict):
                        raise InputError(f"{where}: hp {hp} lists seed {seed} of {dataset} but holds no results for it")
                    self._add_run(index, dataset, hp, int(seed), record, sets, f"{where} [{hp}][{dataset}, {seed}]")
        self._pending += 1
        if self._pending >= self.chunk:
            self._flush()

    def _add_run(self, index: int, dataset: str, hp: str, seed: int, r: dict, sets: dict[str, str], where: str) -> None:
        epochs = r.get("epochs")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
            raise InputError(f"{where}: 'epochs' is {epochs!r}, expected a positive integer of at most {MAX_EPOCHS} "
                             "(NATS-Bench trains at most 200)")
        names = _text_list(r.get("eval_names"), where, "eval_names")
        unknown = [n for n in names if n not in sets]
        if unknown:
            raise InputError(f"{where}: eval sets {unknown} are not NATS-Bench's sets of {dataset} ({list(sets)})")
        self.eval_names.setdefault(dataset, set()).update(names)
        order = self.eval_order.setdefault(dataset, [])
        order.extend(n for n in names if n not in order)
        b = self._buffers.setdefault((dataset, hp), {c: [] for c in (
            "arch_index", "seed", "epoch", "lr", *METRICS, "diverged", "train_seconds", "valid_seconds",
            "test_seconds", "valtest_seconds")})
        columns = {f"{s}_{m}": [None] * epochs for s in _SPLITS[1:] for m in ("loss", "acc", "seconds")}
        columns["train_loss"] = _per_epoch(r.get("train_losses"), epochs, where)
        columns["train_acc"] = _per_epoch(r.get("train_acc1es"), epochs, where)
        columns["train_seconds"] = _per_epoch(r.get("train_times"), epochs, where)
        for name in names:
            split, keys = sets[name], _keys(name, epochs)
            for field, metric in (("eval_losses", "loss"), ("eval_acc1es", "acc"), ("eval_times", "seconds")):
                values = r.get(field) or {}
                if not isinstance(values, dict):
                    raise InputError(f"{where}: {field} is a {type(values).__name__}, expected NATS-Bench's "
                                     "{'set@epoch': value} dict")
                columns[f"{split}_{metric}"] = [_number(values.get(k), where) for k in keys]
        metrics = {name: values for name, values in columns.items() if name.endswith(("_loss", "_acc"))}
        for name, values in metrics.items():
            high = 100.0 if name.endswith("_acc") else math.inf
            bad = next((v for v in values if v is not None and math.isfinite(v) and not 0.0 <= v <= high), None)
            if bad is not None:
                # NATS-Bench's files hold accuracies in percent and non-negative losses; a value outside them
                # would be served (and could win find_best), so it is refused here, naming the run
                raise InputError(f"{where}: {name} holds {bad!r}, outside 0..{high:g}; not a value NATS-Bench's "
                                 "training writes: the file was altered or is not NATS-Bench's")
        # A run with a non-finite metric diverged somewhere: marked so, as a built run would be.
        diverged = any(v is not None and not math.isfinite(v) for values in metrics.values() for v in values)
        b["arch_index"].extend([index] * epochs)
        b["seed"].extend([seed] * epochs)
        b["epoch"].extend(range(epochs))
        b["lr"].extend(_lrs(hp, epochs))
        b["diverged"].extend([diverged] * epochs)
        for name, values in columns.items():
            b[name].extend(values)
        train_seconds = columns["train_seconds"]
        eval_seconds = [v for s in _SPLITS[1:] for v in columns[f"{s}_seconds"] if v is not None]
        complete = all(v is not None for v in train_seconds)
        # Totals summed here, once, in epoch order: the arch-level times need no pass over 40M rows.
        self._run_totals.append((dataset, hp, index, seed, epochs, sum(train_seconds) if complete else None,
                                 sum(eval_seconds) if complete and eval_seconds else None))
        latency = r.get("latency")
        if latency is not None and not isinstance(latency, (list, tuple)):
            latency = [latency]
        self._costs.append((dataset, hp, index, seed, epochs, _number(r.get("params"), where),
                            _number(r.get("flop"), where), None if latency is None else [_number(x, where) for x in latency]))

    def _flush(self) -> None:
        """Spill the buffered archs' rows, one part per (dataset, budget), and their per-arch rows."""
        from nasforge.aggregate import arch_table  # polars + the cost model: only once there is something to write

        costs = self._arch_costs(self._costs[self._costs_flushed:])
        self._costs_flushed = len(self._costs)
        for (dataset, hp), b in sorted(self._buffers.items()):
            frame = pl.DataFrame(b, schema={**{k: v for k, v in {**EPOCHS_SCHEMA, **RUN_TIMES_SCHEMA}.items()
                                                if k in b}}, strict=False)
            indices = frame["arch_index"].unique().to_list()
            names = {i: self.space.arch(i) for i in indices}
            epochs = frame.with_columns(
                pl.lit(self.space.name).alias("space"), pl.lit(dataset).alias("dataset"), pl.lit(hp).alias("hp"),
                pl.col("arch_index").replace_strict(names, return_dtype=pl.String).alias("arch"),
            )
            folder = self.work / f"{dataset}" / f"hp{hp}"
            folder.mkdir(parents=True, exist_ok=True)
            epochs.select(list(EPOCHS_SCHEMA)).write_ipc(folder / f"epochs{self._parts:05d}.arrow", compression="lz4")
            epochs.select(list(RUN_TIMES_SCHEMA)).write_ipc(folder / f"times{self._parts:05d}.arrow", compression="lz4")
            self._archs.append(arch_table(epochs.select(list(EPOCHS_SCHEMA)), self.space.name, costs))
        self._buffers.clear()
        self._parts += 1
        self._pending = 0

    @staticmethod
    def _arch_costs(rows: list[tuple]) -> pl.DataFrame:
        """Per (dataset, hp, arch): NATS-Bench's params and FLOPs (its ``get_compute_costs``: the mean
        over seeds, or seed 888's where the seeds disagree in the 5th decimal)."""
        grouped: dict[tuple, tuple[list, list, list]] = {}
        for dataset, hp, index, seed, _epochs, params, flops, _latency in rows:
            g = grouped.setdefault((dataset, hp, index), ([], [], []))
            g[0].append(seed)
            g[1].append(params)
            g[2].append(flops)
        out = {"dataset": [], "hp": [], "arch_index": [], "params": [], "flops": []}
        for (dataset, hp, index), (seeds, params, flops) in grouped.items():
            out["dataset"].append(dataset)
            out["hp"].append(hp)
            out["arch_index"].append(index)
            out["params"].append(nats_cost(params, seeds, lenient=True))
            out["flops"].append(nats_cost(flops, seeds, lenient=True))
        return pl.DataFrame(out, schema={"dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64,
                                         "params": pl.Float64, "flops": pl.Float64})

    def finish(self, tables: Path, metadata: dict) -> dict[str, Path]:
        """Write the tables under ``tables/`` (each with its checksum) and drop the parts."""
        if self._pending or self._buffers:
            self._flush()
        if not self._archs:
            raise InputError("the source holds no trained arch; nothing to import")
        written = {
            "epochs": _concat_parts(self.work, "epochs", EPOCHS_SCHEMA, tables / "epochs.parquet", metadata),
            "run_times": _concat_parts(self.work, "times", RUN_TIMES_SCHEMA, tables / "run_times.parquet", metadata),
        }
        costs = pl.DataFrame(self._costs, schema=RUN_COSTS_SCHEMA, orient="row")
        written["run_costs"] = write_table(costs, tables / "run_costs.parquet", RUN_KEYS, metadata)
        written["archs"] = write_table(pl.concat(self._archs), tables / "archs.parquet", ARCH_KEYS, metadata)
        written["arch_times"] = write_table(self._arch_times(costs), tables / "arch_times.parquet", ARCH_KEYS)
        shutil.rmtree(self.work, ignore_errors=True)
        return written

    def _arch_times(self, costs: pl.DataFrame) -> pl.DataFrame:
        """NATS-Bench's seconds in the shape simulated-time search reads (``ARCH_TIMES_SCHEMA``): per
        (dataset, hp, arch) the median over seeds of its total and per-epoch train and eval seconds
        (eval: every recorded set), and of its latency; archs whose runs lack times are left out."""
        runs = pl.DataFrame(self._run_totals, orient="row", schema={
            "dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64, "seed": pl.Int64, "epochs": pl.Int64,
            "train_seconds_total": pl.Float64, "eval_seconds_total": pl.Float64})
        summary = (runs.filter(pl.col("train_seconds_total").is_not_null() & (pl.col("eval_seconds_total") > 0))
                   .group_by(ARCH_KEYS, maintain_order=True).agg(
                       pl.col("train_seconds_total").median(), pl.col("eval_seconds_total").median(),
                       pl.col("epochs").first()))
        latency = costs.group_by(ARCH_KEYS, maintain_order=True).agg(
            (pl.col("latency").list.mean().median() * 1000).alias("latency_bs256_ms"))
        return summary.with_columns(
            (pl.col("train_seconds_total") / pl.col("epochs")).alias("train_seconds_per_epoch"),
            (pl.col("eval_seconds_total") / pl.col("epochs")).alias("eval_seconds_per_epoch"),
            pl.lit(None, pl.Float64).alias("latency_bs1_ms"),
        ).join(latency, on=ARCH_KEYS, how="left").select(list(ARCH_TIMES_SCHEMA))


def _concat_parts(work: Path, kind: str, schema: dict, out: Path, metadata: dict) -> Path:
    """One parquet file of every part in key order: groups by (dataset, hp) sorted as strings, parts in
    arch order; one row group per part. Same parts, same bytes."""
    import pyarrow.parquet as pq

    groups = sorted((d.name, h.name[2:], h) for d in work.iterdir() if d.is_dir() for h in d.iterdir())
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema.with_metadata(
        {f"{META_PREFIX}{k}": json.dumps(v, sort_keys=True) for k, v in sorted(metadata.items())})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    with pq.ParquetWriter(tmp, arrow_schema, compression="zstd", write_statistics=True) as writer:
        for _dataset, _hp, folder in groups:
            for part in sorted(folder.glob(f"{kind}*.arrow")):
                writer.write_table(pl.read_ipc(part).to_arrow().cast(arrow_schema),
                                   row_group_size=1 << 22)
    tmp.replace(out)  # written whole, then named; its checksum beside it, as write_checked does
    checksum_path(out).write_text(f"{sha256(out)}  {out.name}\n")
    return out
