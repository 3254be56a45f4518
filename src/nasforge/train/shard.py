"""One training job: a shard of architectures, one space, dataset, budget and seed.

Outputs (the paths the rule declares; by default ``nasforge.paths``' layout):

- ``out`` (``shard{k}.parquet``): one row per (arch, epoch) of deterministic
  metrics, the environment and job in its metadata. Byte-identical on a rerun.
- ``timing_out`` (``shard{k}.timing.parquet``): measured train/eval seconds per
  (arch, epoch).
- ``cost_out`` (``shard{k}.cost.parquet``): params and FLOPs (cost model) and
  measured inference latency per arch (null with ``latency_repeats`` 0: latency
  depends on the arch and the input, not the seed, so the pipeline measures it
  in the first seed's jobs only; at batch 256 on a CPU it costs 10-20 s an arch).

Wall-clock measurements live in a tree of their own (``results/measured/``) on
purpose: they can never be byte-stable, and keeping them apart is what lets
every other file, and DVC's hash of it, be identical on a rebuild.

Resuming: each finished arch is committed to ``shard{k}.parts/`` (beside ``out``) by an atomic
rename; a restarted job skips what is there and, once all archs are in,
assembles the shard tables and drops the parts. A job whose settings differ
from the parts' refuses to mix them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nasforge import numerics
from nasforge.errors import InputError, MissingInputError
from nasforge.files import read_checked, write_checked
from nasforge.models import cost
from nasforge.paths import RESULTS, Results
from nasforge.plan import pack_groups
from nasforge.protocol import Protocol
from nasforge.schema import COST_KEYS, COST_SCHEMA, SHARD_KEYS, SHARD_SCHEMA, TIMING_SCHEMA, epochs_of
from nasforge.spaces import get_space
from nasforge.tables import read_table, write_table
from nasforge.train import environment
from nasforge.train.fused import train_split_on_oom
from nasforge.train.reference import make_network, measure_latency, train_arch
from nasforge.train.splits import Splits, load_splits
from nasforge.weights import encode

PLAN_HINT = "rerun the plan phase (snakemake phase_plan)"


@dataclass(kw_only=True)
class ShardJob:
    """One train job: what to train and the three files it writes."""

    space: str
    dataset: str
    hp: str
    seed: int
    shard: int = 0
    of: int = 1
    data: Path  # the prepared dataset's folder
    out: Path  # the metrics table
    timing_out: Path
    cost_out: Path
    plan: Path | None = None
    archs: list[int] | None = None
    device: str = "auto"
    threads: int = 1
    protocol: Protocol = field(default_factory=Protocol.nats)
    latency_repeats: int = 3
    engine: str = "reference"
    weights_out: Path | None = None  # keep each arch's trained state dict here (train.save_weights)

    @classmethod
    def under(cls, results: Results = RESULTS, **settings: Any) -> ShardJob:
        """A job reading and writing where the pipeline does under ``results`` (``nasforge.paths``)."""
        where = {k: settings[k] for k in ("space", "dataset", "hp", "seed")} | {"k": settings.get("shard", 0)}
        paths = {"data": Path(results.data(settings["dataset"])), "out": Path(results.shard(**where)),
                 "timing_out": Path(results.shard(**where, kind="timing")),
                 "cost_out": Path(results.shard(**where, kind="cost"))}
        return cls(**{**paths, **settings})

    @property
    def parts(self) -> Path:
        """Where finished archs wait for the shard to complete: ``shard{k}.parts/`` beside ``out``."""
        return Path(self.out).with_suffix(".parts")


ENGINES = ("reference", "fused")


def shard_archs(job: ShardJob) -> list[int]:
    """The arch indices this shard trains: explicit, from the plan, or every of-th arch of the space."""
    if not 0 <= job.shard < job.of:
        raise InputError(f"shard {job.shard} is not in 0..{job.of - 1} (--of {job.of})")
    space = get_space(job.space)
    if job.archs is not None:
        for i in job.archs:
            space.arch(i)  # validates the index
        return sorted(set(job.archs))
    if job.plan is not None:
        return _archs_from_plan(Path(job.plan), job)
    return list(range(job.shard, len(space), job.of))


def _archs_from_plan(plan: Path, job: ShardJob) -> list[int]:
    if not plan.is_file():
        raise MissingInputError(f"{plan}: no plan; run the plan phase (snakemake phase_plan) or omit --plan")
    table = read_table(plan, PLAN_HINT)
    missing = {"arch_index", "shard"} - set(table.columns)
    if missing:
        raise InputError(f"{plan}: missing columns {sorted(missing)}; rebuild it with `nasforge plan`")
    shards = table["shard"].n_unique()
    if table["shard"].max() + 1 != job.of:
        raise InputError(f"{plan}: holds {shards} shards but the job says --of {job.of}")
    return sorted(table.filter(pl.col("shard") == job.shard)["arch_index"].to_list())


def run_shard(job: ShardJob) -> Path:
    """Train every arch of the shard that is not yet done, then assemble its tables."""
    epochs = epochs_of(job.hp)  # the budget; warm-up epochs, if the protocol has any, come on top
    if job.engine not in ENGINES:
        raise InputError(f"unknown engine {job.engine!r}: expected one of {list(ENGINES)}")
    archs = shard_archs(job)
    if job.weights_out is not None and job.engine != "reference":
        raise InputError(f"train.save_weights keeps one network's weights at a time: set train.engine: reference "
                         f"(the {job.engine} engine trains a group as one stacked network)")
    environment.pin(job.threads)
    device = environment.resolve_device(job.device)
    parts = job.parts
    config = {
        "space": job.space, "dataset": job.dataset, "hp": job.hp, "seed": job.seed, "shard": job.shard,
        "of": job.of, "archs": archs, "epochs": epochs, "protocol": job.protocol.as_dict(),
        "engine": job.engine, "device_type": device.type, "threads": job.threads,
        "cpu_isa": numerics.level(),
        # recorded only when on, so a build without weights keeps the bytes it had before the option existed
        **({"save_weights": True} if job.weights_out is not None else {}),
    }
    lock = _lock_parts(parts)
    try:
        _claim_parts(parts, config)
        done = {int(p.name.split(".")[0]) for p in parts.glob("*.metrics.parquet")}
        todo = [i for i in archs if i not in done]
        if done & set(archs):  # a resubmitted job (killed, preempted, scancelled): say what it keeps
            print(f"{job.out}: resuming; {len(archs) - len(todo)} of {len(archs)} archs were trained by an earlier "
                  "run and are kept", file=sys.stderr)
        if todo:
            splits = load_splits(Path(job.data), device)
            if splits.dataset != job.dataset:
                raise InputError(f"{job.data} holds {splits.dataset!r}, not {job.dataset!r}")
            _train_parts(job, todo, len(archs) - len(todo), len(archs), epochs, splits, device, parts)
        env = environment.describe(device)
        _assemble(job, archs, parts, env, config)
        shutil.rmtree(parts)
    finally:
        os.close(lock)  # releases the lock
    return Path(job.out)


def _lock_parts(parts: Path) -> int:
    """Hold an exclusive lock on the shard's parts folder for the whole job: a second job on the same
    shard (a resubmission while the first still runs) stops at once instead of mixing its parts in."""
    while True:
        parts.mkdir(parents=True, exist_ok=True)
        fd = os.open(parts, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{parts}: another train-shard job is training this shard now; wait for it to end "
                             "(or stop it) and run this one again") from None
        try:
            if os.stat(parts).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder finished and removed the folder meanwhile: take the new one


def _claim_parts(parts: Path, config: dict) -> None:
    job_file = parts / "job.json"
    trained = any(parts.glob("*.metrics.parquet"))
    if job_file.is_file() and trained:  # with nothing trained, a failed run's settings bind no one
        try:
            previous = json.loads(job_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = {"unreadable": str(job_file)}
        if previous != config:
            changed = sorted(k for k in config.keys() | previous.keys() if config.get(k) != previous.get(k))
            raise InputError(
                f"{parts}: holds archs trained with other settings (differs in {changed}); "
                f"rerun with the original settings to resume, or delete that folder to start over"
            )
        return
    parts.mkdir(parents=True, exist_ok=True)
    tmp = parts / "job.json.tmp"
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    tmp.replace(job_file)


def fused_groups(job: ShardJob, todo: list[int]) -> list[list[int]]:
    """The plan's groups (what is left of them), or the shard packed here when no plan says."""
    if job.plan is not None and job.archs is None:
        table = read_table(job.plan, PLAN_HINT)
        if "group" in table.columns:
            mine = table.filter((pl.col("shard") == job.shard) & pl.col("arch_index").is_in(todo))
            return [sorted(g["arch_index"].to_list()) for _, g in mine.sort("group").group_by("group", maintain_order=True)]
    return pack_groups(job.space, todo)


def _train_parts(job: ShardJob, todo: list[int], done: int, total: int, epochs: int, splits: Splits,
                 device: torch.device, parts: Path) -> None:
    space = get_space(job.space)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not sys.stderr.isatty(), transient=True) as progress:
        shard_task = progress.add_task(f"{job.space} shard {job.shard}/{job.of} archs", total=total, completed=done)
        epoch_task = progress.add_task("epochs", total=epochs)

        def keep_weights(index: int, net: torch.nn.Module) -> None:
            """The trained state dict beside the arch's other parts, before its metrics mark it done."""
            data = encode(net.state_dict(), f"arch {index}")
            write_checked(parts / f"{index}.weights.safetensors", data)

        def commit(index: int, metrics: list[dict], timings: list[dict]) -> None:
            ident = {"space": job.space, "arch_index": index, "dataset": job.dataset, "hp": job.hp, "seed": job.seed}
            arch = space.arch(index)
            timing = pl.DataFrame([{**ident, **t} for t in timings], schema=TIMING_SCHEMA)
            write_table(timing, parts / f"{index}.timing.parquet", SHARD_KEYS)
            write_table(_cost_row(job, index, arch, splits, device), parts / f"{index}.cost.parquet", COST_KEYS)
            rows = pl.DataFrame([{**ident, "arch": arch, **m} for m in metrics], schema=SHARD_SCHEMA)
            write_table(rows, parts / f"{index}.metrics.parquet", SHARD_KEYS)  # written last: marks the arch done
            progress.advance(shard_task)

        if job.engine == "fused":
            for group in fused_groups(job, todo):
                progress.reset(epoch_task, total=epochs, description=f"group of {len(group)} epochs")
                results = train_split_on_oom(job.space, group, job.seed, epochs, job.protocol, splits, device,
                                             on_epoch=lambda _: progress.advance(epoch_task))
                for index, (metrics, timings) in zip(group, results, strict=True):
                    commit(index, metrics, timings)
            return
        for index in todo:
            progress.reset(epoch_task, total=epochs, description=f"arch {index} epochs")
            trained = None if job.weights_out is None else (lambda net, i=index: keep_weights(i, net))
            commit(index, *train_arch(job.space, index, job.seed, epochs, job.protocol, splits, device,
                                      on_epoch=lambda _: progress.advance(epoch_task), on_trained=trained))


def _cost_row(job: ShardJob, index: int, arch: str, splits: Splits, device: torch.device) -> pl.DataFrame:
    channels, size, _ = splits.image_shape
    c = cost(job.space, arch, splits.num_classes, size, channels)
    latency = {"latency_bs1_ms": None, "latency_bs256_ms": None}  # latency_repeats 0: measured in another job
    if job.latency_repeats:
        net = make_network(job.space, index, job.seed, splits, device)
        latency = {f"latency_bs{b}_ms": measure_latency(net, b, splits.image_shape, device, job.latency_repeats)
                   for b in (1, 256)}
    row = {"space": job.space, "arch_index": index, "arch": arch, "dataset": job.dataset, "seed": job.seed,
           "params": c["params"], "flops": c["flops"], **latency}
    return pl.DataFrame([row], schema=COST_SCHEMA)


def _assemble(job: ShardJob, archs: list[int], parts: Path, env: dict, config: dict) -> None:
    def gather(kind: str) -> pl.DataFrame:
        return pl.concat([read_table(parts / f"{i}.{kind}.parquet", f"delete {parts} and rerun this job")
                          for i in archs])

    meta = {"environment": env, "job": config}
    measured_meta = {**meta, "host": environment.host()}
    write_table(gather("timing"), job.timing_out, SHARD_KEYS, measured_meta)
    write_table(gather("cost"), job.cost_out, COST_KEYS, measured_meta)
    if job.weights_out is not None:
        weights = Path(job.weights_out)
        shutil.rmtree(weights, ignore_errors=True)
        weights.mkdir(parents=True)
        for i in archs:
            data = read_checked(parts / f"{i}.weights.safetensors", f"delete {parts} and rerun this job")
            write_checked(weights / f"{i}.safetensors", data)
    write_table(gather("metrics"), job.out, SHARD_KEYS, meta)  # last: its presence means the shard is complete

