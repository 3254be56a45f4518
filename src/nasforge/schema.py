"""What every nasforge table holds: budgets, metrics, column types and keys.

One torch-free home for the shapes the phases hand each other, so the writer
of a table (a train job, the plan, a search) and its readers (aggregate,
validate, the query API) cannot drift apart, and a researcher who only reads
releases imports polars, not torch.
"""

from __future__ import annotations

import polars as pl

from nasforge.errors import InputError

#: NATS-Bench's budgets, each named by its epochs with a leading zero below 10.
NATS_BUDGETS = ("01", "12", "90", "200")

#: Per-epoch metrics of a trained network; an arch's final values are those of its last epoch.
METRICS = ["train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc", "valtest_loss",
           "valtest_acc"]


def _ascii_number(text: str) -> bool:
    """Digits 0-9 only: ``str.isdigit`` also admits '²' and other digits ``int`` refuses or reads."""
    return text.isascii() and text.isdecimal()


def budget_name(hp: object) -> str:
    """A budget as releases name it (1, "1", "01" -> "01"); anything but ASCII digits is returned as
    given, to be reported as a budget the release does not hold."""
    text = str(hp)
    return f"{int(text):02d}" if _ascii_number(text) else text


def epochs_of(hp: str) -> int:
    """NATS-Bench names a budget by its epochs: hp "01" trains 1 epoch, "200" trains 200."""
    if not _ascii_number(str(hp)) or int(hp) < 1 or str(hp) != f"{int(hp):02d}":
        raise InputError(f"budget hp must be a positive number of epochs written as NATS-Bench does "
                         f"('01', '12', '90', '200'); got {hp!r}")
    return int(hp)


# --- plan phase ---------------------------------------------------------------
PLAN_SCHEMA = {"arch_index": pl.Int64, "arch": pl.String, "flops": pl.Float64, "shard": pl.Int64,
               "group": pl.Int64}
PLAN_KEYS = ["arch_index"]

# --- train phase: one shard's tables ------------------------------------------
SHARD_SCHEMA = {
    "space": pl.String, "arch_index": pl.Int64, "arch": pl.String, "dataset": pl.String, "hp": pl.String,
    "seed": pl.Int64, "epoch": pl.Int64, "lr": pl.Float64, **{m: pl.Float64 for m in METRICS},
    "diverged": pl.Boolean,
}
SHARD_KEYS = ["space", "dataset", "hp", "seed", "arch_index", "epoch"]
TIMING_SCHEMA = {
    "space": pl.String, "arch_index": pl.Int64, "dataset": pl.String, "hp": pl.String, "seed": pl.Int64,
    "epoch": pl.Int64, "train_seconds": pl.Float64, "eval_seconds": pl.Float64,
}
COST_SCHEMA = {
    "space": pl.String, "arch_index": pl.Int64, "arch": pl.String, "dataset": pl.String, "seed": pl.Int64,
    "params": pl.Float64, "flops": pl.Float64, "latency_bs1_ms": pl.Float64, "latency_bs256_ms": pl.Float64,
}
COST_KEYS = ["arch_index"]

# --- aggregate phase: the benchmark's tables ----------------------------------
EPOCHS_SCHEMA = SHARD_SCHEMA  # epochs.parquet keeps the shard tables' columns, all shards together
EPOCH_KEYS = ["dataset", "hp", "arch_index", "seed", "epoch"]
ARCH_KEYS = ["dataset", "hp", "arch_index"]
ARCH_SCHEMA = {
    "space": pl.String, "dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64, "arch": pl.String,
    "canonical_index": pl.Int64, "canonical": pl.String, "params": pl.Float64, "flops": pl.Float64,
    "n_seeds": pl.UInt32, "seeds": pl.List(pl.Int64), "diverged": pl.Boolean,
    **{c: t for m in METRICS for c, t in ((f"{m}_seeds", pl.List(pl.Float64)), (f"{m}_mean", pl.Float64),
                                          (f"{m}_std", pl.Float64))},
}
ARCH_TIMES_SCHEMA = {
    "dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64, "train_seconds_total": pl.Float64,
    "eval_seconds_total": pl.Float64, "train_seconds_per_epoch": pl.Float64, "eval_seconds_per_epoch": pl.Float64,
    "latency_bs1_ms": pl.Float64, "latency_bs256_ms": pl.Float64,
}

# --- search phase ---------------------------------------------------------------
PROXIES = ("naswot", "jacob_cov", "grad_norm", "snip", "synflow")
PROXY_SCHEMA = {
    "space": pl.String, "dataset": pl.String, "arch_index": pl.Int64, "arch": pl.String, "seed": pl.Int64,
    "batch_size": pl.Int64, **{p: pl.Float64 for p in PROXIES}, "params": pl.Float64, "flops": pl.Float64,
}
PROXY_KEYS = ["dataset", "arch_index"]
TRAJECTORY_SCHEMA = {
    "algo": pl.String, "dataset": pl.String, "hp": pl.String, "run": pl.Int64, "step": pl.Int64,
    "simulated_seconds": pl.Float64, "arch_index": pl.Int64, "valid_acc": pl.Float64,
    "best_arch_index": pl.Int64, "best_valid_acc": pl.Float64, "best_test_acc": pl.Float64,
    "score": pl.Float64,  # a training-free search's proxy score (null for multi-trial algorithms)
}
TRAJECTORY_KEYS = ["algo", "dataset", "hp", "run", "step"]

# --- import phase: what a published NATS-Bench holds beyond a build's tables ----
#: NATS-Bench's recorded seconds of every epoch of every run, per split evaluated (null where it recorded none).
RUN_TIMES_SCHEMA = {
    "dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64, "seed": pl.Int64, "epoch": pl.Int64,
    "train_seconds": pl.Float64, "valid_seconds": pl.Float64, "test_seconds": pl.Float64,
    "valtest_seconds": pl.Float64,
}
#: Per run: epochs trained, params and FLOPs (millions) as the run recorded them, and its latency
#: measurements (seconds; null where NATS-Bench stored none).
RUN_COSTS_SCHEMA = {
    "dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64, "seed": pl.Int64, "epochs": pl.Int64,
    "params": pl.Float64, "flops": pl.Float64, "latency": pl.List(pl.Float64),
}
RUN_KEYS = [*ARCH_KEYS, "seed"]
