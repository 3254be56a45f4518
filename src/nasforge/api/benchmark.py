"""Query a release: ``Benchmark.open(release_dir)``.

Opening reads only ``manifest.json`` and the small per-arch table into memory
(with a dict from (dataset, hp, arch) to its row), so final-metric and cost
queries are dictionary look-ups. The per-epoch table, which for a full
NATS-Bench rebuild holds tens of millions of rows, stays a lazy polars scan,
read only for per-epoch queries (the file is sorted by dataset, hp, arch,
seed, epoch, so parquet statistics skip most of it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from nasforge.api.checks import check_archs, check_schema, check_times
from nasforge.errors import InputError, MissingInputError
from nasforge.files import read_checked
from nasforge.release.manifest import (
    MANIFEST,
    MEASURED,
    ReleaseError,
    file_sha256,
    read_bytes,
    read_manifest,
    unsafe_entries,
)
from nasforge.schema import METRICS, RUN_COSTS_SCHEMA, RUN_KEYS, RUN_TIMES_SCHEMA, budget_name
from nasforge.spaces import get_space
from nasforge.tables import decode
from nasforge.weights import WEIGHTS_SCHEMA, WEIGHTS_TABLE, load_weights, weights_file

Reader = Callable[[Path], bytes]
IMPORT_KEY = "source"  # a release's manifest names its source when it was imported, not built


class _Columns(dict):
    """Columns of the per-arch table as Python lists, converted on first use: converting
    all 30-odd columns of a full release takes about a second, most queries need a few."""

    def __init__(self, frame: pl.DataFrame) -> None:
        super().__init__()
        self._frame = frame

    def __missing__(self, name: str) -> list:
        column = self._frame[name]
        widths = column.list.len().unique() if column.dtype == pl.List else None
        if widths is not None and widths.len() == 1 and widths[0]:
            # Per-seed lists of one width (every seed trained): a numpy matrix, no per-value objects.
            self[name] = column.list.to_array(widths[0]).to_numpy()
        else:
            self[name] = column.to_list()
        return self[name]


class _Curves(Mapping):
    """Per-epoch values of every (arch, seed): one float column and each curve's span in it
    (a full NATS-Bench budget of 200 epochs holds 9.4 million values: 75 MB this way)."""

    def __init__(self, spans: dict[tuple[int, int], tuple[int, int]], column: pl.Series) -> None:
        self._spans, self._column = spans, column

    def __getitem__(self, key: tuple[int, int]) -> list[float | None]:
        start, stop = self._spans[key]
        return self._column.slice(start, stop - start).to_list()

    def __iter__(self):
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


def _value(x) -> float | None:
    """A plain float (None for a missing value, as polars' lists give it)."""
    return None if x is None else float(x)


class QueryError(InputError):
    """A query names an arch, dataset, budget or seed the release does not hold; the message says what it holds."""


def _release_reader(root: Path, manifests: dict[str, dict]) -> Reader:
    """Reads a file of the release only through a safe descriptor and only if it matches its manifest
    entry. ``read.check(path)`` checks a file without keeping its bytes (hashed in 1 MiB pieces): the
    per-epoch tables of a full benchmark are a gigabyte, and are then scanned, never held."""
    def entry(path: Path) -> dict:
        rel = path.relative_to(root).as_posix()
        measured = rel.startswith(f"{MEASURED}/")
        listing = manifests[MEASURED if measured else ""]["files"]
        key = rel[len(MEASURED) + 1:] if measured else rel
        if key not in listing:
            raise ReleaseError(f"{path}: not listed in the release's manifest; {_REBUILD}")
        return listing[key]

    def refuse(path: Path) -> None:
        raise ReleaseError(f"{path}: sha256 differs from the manifest (changed since release); {_REBUILD}")

    def sized(path: Path) -> dict:
        """The entry, once the file's size matches it: a 64 GB sparse file is refused before a byte is read."""
        expected = entry(path)
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            raise ReleaseError(f"{path}: listed in the manifest but missing; {_REBUILD}") from None
        if size != expected["bytes"]:
            raise ReleaseError(f"{path}: sha256 differs from the manifest (changed since release: {size} bytes "
                               f"where it lists {expected['bytes']}); {_REBUILD}")
        return expected

    def read(path: Path) -> bytes:
        expected = sized(path)
        data = read_bytes(path, expected["bytes"])
        if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
            refuse(path)
        return data

    def check(path: Path) -> None:
        expected = sized(path)
        if file_sha256(path) != (expected["sha256"], expected["bytes"]):
            refuse(path)

    read.check = check
    return read


_REBUILD = "run `nasforge release verify` on it, and fetch the published release again or rebuild it"


@dataclass
class Benchmark:
    root: Path
    manifest: dict
    archs: pl.DataFrame
    _rows: dict[tuple[str, str, int], int]
    _columns: _Columns
    _held: frozenset[int]
    _times_path: Path
    _epochs_path: Path
    _read: Reader
    datasets: list[str] = field(default_factory=list)  # what the release holds, computed once at open:
    budgets: list[str] = field(default_factory=list)  # queries check against these on every call
    seeds: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self._columns
        self.datasets = sorted(set(c["dataset"]))
        self.budgets = sorted(set(c["hp"]), key=int)
        self.seeds = sorted(self.archs["seeds"].explode().unique().drop_nulls().to_list())
        self.indices = sorted(self._held)

    @classmethod
    def open(cls, release_dir: Path | str) -> Benchmark:
        """Open a release, trusting nothing in it: the manifests must be well formed, the folder must
        hold no links or special files, and every table is read only if it matches its manifest
        entry and holds values nasforge could have written (ReleaseError otherwise)."""
        root = Path(release_dir)
        if not root.is_dir():
            raise MissingInputError(f"{root}: no such release folder (build one with `nasforge pipeline`)")
        manifest = read_manifest(root / MANIFEST)
        unsafe = unsafe_entries(root)
        if unsafe:
            raise ReleaseError(f"{unsafe[0]}" + (f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""))
        measured = read_manifest(root / MEASURED / MANIFEST, top=False)
        read = _release_reader(root, {"": manifest, MEASURED: measured})
        # An import's times are NATS-Bench's recorded ones, part of its deterministic tables.
        times = root / "tables" / "arch_times.parquet" if IMPORT_KEY in manifest else root / MEASURED / "arch_times.parquet"
        return cls.from_tables(root, manifest["space"], root / "tables", times, manifest, read)

    @classmethod
    def from_tables(cls, root: Path | str, space: str, tables: Path | str, times: Path | str,
                    manifest: dict | None = None, read: Reader | None = None) -> Benchmark:
        """A benchmark over ``archs.parquet``/``epochs.parquet`` in ``tables`` and measured ``times``,
        before any release exists: the pipeline's search phase queries the aggregated tables
        (each read only if it matches the checksum the aggregate phase wrote beside it)."""
        read = read or (lambda path: read_checked(path, "rerun the aggregate phase (snakemake phase_aggregate)"))
        path = Path(tables) / "archs.parquet"
        archs = decode(read(path), path)
        missing = [f"{m}_mean" for m in METRICS if f"{m}_mean" not in archs.columns]
        if missing:
            raise QueryError(f"{path}: no columns {missing}; it was built by nasforge "
                             f"before 0.2.0 (no valtest, another lr schedule): rebuild it with `nasforge pipeline`")
        check_archs(archs, path, space)
        columns = _Columns(archs)
        rows = {key: i for i, key in enumerate(zip(columns["dataset"], columns["hp"], columns["arch_index"], strict=True))}
        return cls(Path(root), manifest or {"space": space}, archs, rows, columns, frozenset(columns["arch_index"]),
                   Path(times), Path(tables) / "epochs.parquet", read)

    @cached_property
    def _measured(self) -> dict[tuple[str, str, int], dict[str, float]]:
        """Measured seconds and latency per (dataset, hp, arch), read (and checked) on the first cost query."""
        measured = {}
        if self._times_path.is_file():
            times = decode(self._read(self._times_path), self._times_path)
            check_times(times, self._times_path)
            for r in times.iter_rows(named=True):
                measured[(r.pop("dataset"), r.pop("hp"), r.pop("arch_index"))] = r
        return measured

    @cached_property
    def _epochs_checked(self) -> Path:
        """The per-epoch table's path, once its bytes have matched their record (hashed once, then scanned)."""
        return self._checked(self._epochs_path)

    # --- what the release holds -------------------------------------------------
    @property
    def space(self) -> str:
        return self.manifest["space"]

    @property
    def imported(self) -> bool:
        """Whether the release was imported from a published benchmark (``nasforge import``), not built."""
        return IMPORT_KEY in self.manifest

    @cached_property
    def _weights(self) -> dict[tuple[str, str, int, int], str]:
        """(dataset, hp, arch, seed) -> sha256 of its weights file; empty where the release holds no weights."""
        path = self._epochs_path.parent / WEIGHTS_TABLE
        if path.relative_to(self.root).as_posix() not in self.manifest.get("files", {}):
            return {}
        table = decode(self._read(path), path)
        check_schema(table, WEIGHTS_SCHEMA, path)
        return {(d, h, i, s): sha for d, h, i, s, sha in table.select(
            "dataset", "hp", "arch_index", "seed", "sha256").iter_rows()}

    def has_weights(self, dataset: str, hp: str, arch: str | int, seed: int) -> bool:
        return (dataset, hp, self.index_of(arch), int(seed)) in self._weights

    def weights(self, dataset: str, hp: str, arch: str | int, seed: int):
        """One run's trained state dict (torch tensors), read now and verified (manifest and content address);
        None where the release holds no weights for it. Nothing is cached: weights are large and rarely asked."""
        sha = self._weights.get((dataset, hp, self.index_of(arch), int(seed)))
        if sha is None:
            return None
        path = self.root / weights_file(sha)
        return load_weights(self._read(path), sha, path)

    def _checked(self, path: Path) -> Path:
        """``path`` once its bytes have matched their record (hashed once per file, then scanned)."""
        done = self.__dict__.setdefault("_checked_paths", set())
        if path not in done:
            check = getattr(self._read, "check", None)
            if check is not None:
                check(path)
            else:  # the pipeline's checksum reader (small tables before a release exists)
                self._read(path)
            if path.suffix == ".parquet":  # scanned lazily later: a truncated (re-hashed) table fails here, named
                try:
                    pl.read_parquet_schema(path)
                except (pl.exceptions.PolarsError, OSError) as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    raise ReleaseError(f"{path}: not a readable parquet table ({first}); the release was altered: "
                                       "fetch it again") from None
            done.add(path)
        return path

    def runs(self, arch: str | int, hp: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Every run of one arch under budget ``hp`` on every dataset: its per-epoch rows, its per-epoch
        seconds (``RUN_TIMES_SCHEMA``) and its costs (``RUN_COSTS_SCHEMA``). An import holds NATS-Bench's
        recorded seconds per eval set; a build measured one evaluation pass per epoch, which stands for
        every split it evaluated."""
        index = self.index_of(arch)
        hp = budget_name(hp)
        if hp not in self.budgets:
            raise QueryError(f"budget hp={hp!r} is not in this release; it holds {self.budgets}")
        this = (pl.col("hp") == hp) & (pl.col("arch_index") == index)
        epochs = pl.scan_parquet(self._epochs_checked).filter(this).collect()
        tables = self._epochs_path.parent
        if self.imported:
            times = pl.scan_parquet(self._checked(tables / "run_times.parquet")).filter(this).collect()
            costs = pl.scan_parquet(self._checked(tables / "run_costs.parquet")).filter(this).collect()
            check_schema(times, RUN_TIMES_SCHEMA, tables / "run_times.parquet")
            check_schema(costs, RUN_COSTS_SCHEMA, tables / "run_costs.parquet")
            return epochs, times, costs
        measured = self._times_path.parent
        times = pl.DataFrame(schema=RUN_TIMES_SCHEMA)
        if (measured / "times.parquet").is_file():
            raw = pl.scan_parquet(self._checked(measured / "times.parquet")).filter(this).collect()
            has = epochs.select(*RUN_KEYS, "epoch", *[pl.col(f"{s}_acc").is_not_null().alias(s) for s in ("valid", "test", "valtest")])
            times = raw.join(has, on=[*RUN_KEYS, "epoch"], how="left").select(
                *RUN_KEYS, "epoch", "train_seconds",
                *[pl.when(pl.col(s)).then(pl.col("eval_seconds")).alias(f"{s}_seconds") for s in ("valid", "test", "valtest")])
        latency = pl.DataFrame(schema={"dataset": pl.String, "arch_index": pl.Int64, "seed": pl.Int64, "latency": pl.List(pl.Float64)})
        if (measured / "latency.parquet").is_file():
            latency = (pl.scan_parquet(self._checked(measured / "latency.parquet")).filter(pl.col("arch_index") == index)
                       .select("dataset", "arch_index", "seed", pl.when(pl.col("latency_bs256_ms").is_not_null())
                               .then(pl.concat_list(pl.col("latency_bs256_ms") / 1000)).alias("latency")).collect())
        rows = [self._rows[(d, hp, index)] for d in self.datasets if (d, hp, index) in self._rows]
        costs = (epochs.group_by(RUN_KEYS).agg((pl.col("epoch").max() + 1).alias("epochs"))
                 .join(pl.DataFrame({"dataset": [self._columns["dataset"][r] for r in rows],
                                     "params": [self._columns["params"][r] for r in rows],
                                     "flops": [self._columns["flops"][r] for r in rows]}), on="dataset")
                 .join(latency, on=["dataset", "arch_index", "seed"], how="left").select(list(RUN_COSTS_SCHEMA)))
        return epochs, times, costs

    def index_of(self, arch: str | int) -> int:
        """The NATS-Bench index of an index or arch string held by this release."""
        space = get_space(self.space)
        try:
            if isinstance(arch, int) or str(arch).isdigit():
                index = int(arch)
                space.arch(index)  # validates the range
            else:
                index = space.index(arch)
        except ValueError as err:
            raise QueryError(str(err)) from None
        if index not in self._held:
            raise QueryError(f"arch {index} ({space.arch(index)}) is in the {self.space} space but not in this release, "
                             f"which holds {len(self.indices)} archs")
        return index

    def _row(self, arch: str | int, dataset: str, hp: str) -> int:
        index = self.index_of(arch)
        hp = budget_name(hp)  # 1 -> "01", as budgets are named
        if dataset not in self.datasets:
            raise QueryError(f"dataset {dataset!r} is not in this release; it holds {self.datasets}")
        if hp not in self.budgets:
            raise QueryError(f"budget hp={hp!r} is not in this release; it holds {self.budgets}")
        return self._rows[(dataset, hp, index)]

    # --- queries ----------------------------------------------------------------
    def final(self, arch: str | int, dataset: str, hp: str, seed: int | None = None) -> dict[str, float | None]:
        """Final-epoch metrics of one seed, or the mean over seeds (``seed=None``)."""
        row = self._row(arch, dataset, hp)
        c = self._columns
        if seed is None:
            return {m: c[f"{m}_mean"][row] for m in METRICS}
        seeds = [int(s) for s in c["seeds"][row]]
        if seed not in seeds:
            raise QueryError(f"seed {seed} was not trained for this arch/dataset/budget; seeds: {seeds}")
        k = seeds.index(seed)
        return {m: _value(c[f"{m}_seeds"][row][k]) for m in METRICS}

    def trained_seeds(self, arch: str | int, dataset: str, hp: str) -> list[int]:
        return [int(s) for s in self._columns["seeds"][self._row(arch, dataset, hp)]]

    def epochs(self, arch: str | int, dataset: str, hp: str, seed: int | None = None) -> pl.DataFrame:
        """Per-epoch metrics of one seed, or their mean over seeds, one row per epoch."""
        row = self._row(arch, dataset, hp)
        index, hp_key = self._columns["arch_index"][row], self._columns["hp"][row]
        scan = pl.scan_parquet(self._epochs_checked).filter(
            (pl.col("dataset") == dataset) & (pl.col("hp") == hp_key) & (pl.col("arch_index") == index))
        if seed is not None:
            seeds = [int(s) for s in self._columns["seeds"][row]]
            if seed not in seeds:
                raise QueryError(f"seed {seed} was not trained; seeds: {seeds}")
            return scan.filter(pl.col("seed") == seed).select("epoch", "lr", *METRICS, "diverged").sort("epoch").collect()
        return (scan.group_by("epoch").agg(pl.col("lr").first(), *[pl.col(m).mean() for m in METRICS],
                                           pl.col("diverged").any()).sort("epoch").collect())

    def curves(self, dataset: str, hp: str, metric: str = "valid_acc") -> Mapping[tuple[int, int], list[float | None]]:
        """Every (arch, seed)'s per-epoch ``metric`` for one dataset and budget, read in one scan and
        kept: a search that looks at curves (BOHB) must not rescan the per-epoch table per trial."""
        if metric not in METRICS:
            raise QueryError(f"metric {metric!r} is not one of {METRICS}")
        self._row(self.indices[0], dataset, hp)  # validates dataset and budget
        hp_key = budget_name(hp)  # _row found it among the budgets
        cache = self.__dict__.setdefault("_curves", {})
        if (dataset, hp_key, metric) not in cache:
            table = (pl.scan_parquet(self._epochs_checked)
                     .filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp_key))
                     .select("arch_index", "seed", "epoch", metric).sort("arch_index", "seed", "epoch").collect())
            keys = table.select("arch_index", "seed")
            starts = keys.with_row_index().group_by("arch_index", "seed", maintain_order=True).agg(
                pl.col("index").first().alias("start"), pl.len().alias("n"))
            spans = {(a, s): (i, i + n) for a, s, i, n in starts.select("arch_index", "seed", "start", "n").iter_rows()}
            cache[(dataset, hp_key, metric)] = _Curves(spans, table[metric])
        return cache[(dataset, hp_key, metric)]

    def cost(self, arch: str | int, dataset: str, hp: str | None = None) -> dict[str, float | None]:
        """Params and FLOPs (millions); from ``measured/``: inference latency (ms, batch 1 and
        256) and train/eval seconds per epoch and in total for budget ``hp`` (medians over seeds)."""
        row = self._row(arch, dataset, hp or self.budgets[0])
        c = self._columns
        out = {"params": c["params"][row], "flops": c["flops"][row]}
        measured = self._measured.get((dataset, c["hp"][row], c["arch_index"][row]))
        if measured:
            keep = measured if hp is not None else {k: v for k, v in measured.items() if k.startswith("latency")}
            out.update(keep)
        return out

    def best(self, dataset: str, hp: str, metric: str = "test_acc", max_flops: float | None = None,
             max_params: float | None = None) -> tuple[int, float]:
        """(index, seed-mean ``metric``) of the best non-diverged arch within the cost limits."""
        if metric not in METRICS:
            raise QueryError(f"metric {metric!r} is not one of {METRICS}")
        self._row(self.indices[0], dataset, hp)  # validates dataset and budget
        hp_key = budget_name(hp)  # _row found it among the budgets
        t = self.archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp_key) & ~pl.col("diverged"))
        if max_flops is not None:
            t = t.filter(pl.col("flops") <= max_flops)
        if max_params is not None:
            t = t.filter(pl.col("params") <= max_params)
        column = f"{metric}_mean"
        t = t.filter(pl.col(column).is_not_null() & pl.col(column).is_not_nan())
        if not t.height:
            raise QueryError(f"no arch of {dataset} hp{hp_key} has {metric} within the given limits")
        best = t.sort([column, "arch_index"], descending=[metric.endswith("acc"), False]).row(0, named=True)
        return best["arch_index"], best[column]

    def canonical(self, arch: str | int) -> int:
        return get_space(self.space).canonical_index(self.index_of(arch))

    def siblings(self, arch: str | int) -> list[int]:
        """Archs of this release in the same isomorphism class (itself included)."""
        canonical = self.canonical(arch)
        return sorted({i for i, c in zip(self._columns["arch_index"], self._columns["canonical_index"], strict=True)
                       if c == canonical})
