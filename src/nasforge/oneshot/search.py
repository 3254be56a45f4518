"""One weight-sharing search job: an algorithm, a dataset and a seed, epoch by epoch, resumable.

Data as NATS-Bench's search loaders give it: each step pairs a batch of the training split (the
supernet's weights) with a batch drawn at random from the validation split (the architecture), both
augmented as for training; after each epoch the derived arch is selected and the supernet evaluated
on the validation split without augmentation, in batches of ``eval_batch_size`` (NATS-Bench's
test_batch_size, 512). On cifar10-valid, cifar100 and ImageNet16-120 these are the splits
NATS-Bench's ``get_nas_search_loaders`` searches on (cifar-split.txt's halves of the training set;
the training set with the xvalid half of the test set).

Outputs: ``out`` has one row per epoch (the derived arch, the supernet's losses and accuracies, the
architecture distribution and its entropy, tau, lr; ``diverged`` from the epoch the weights' loss
stopped being finite); with ``pt`` (darts-v1/v2) a last row holds the arch DARTS-PT selects from the
final supernet. ``timing_out`` (under ``measured/``) holds each epoch's seconds.

Resuming: the state after every epoch (supernet, alphas or controller, both optimisers, the data
and sampling generators, the rows so far) is written to ``{out}.ckpt`` by an atomic rename; a
restarted job continues from it and writes the same bytes an uninterrupted one does.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import torch

from nasforge import numerics
from nasforge.errors import InputError
from nasforge.oneshot import darts_pt
from nasforge.oneshot.algorithms import (
    ARCH_OPTIMIZER,
    Search,
    Settings,
    check_algorithm,
    entropy,
    make_search,
    space_of,
)
from nasforge.protocol import Protocol
from nasforge.spaces import get_space
from nasforge.tables import write_table
from nasforge.train import environment
from nasforge.train.loop import sync
from nasforge.train.splits import Splits, load_splits

SEARCH_SCHEMA = {
    "space": pl.String, "algorithm": pl.String, "selection": pl.String, "dataset": pl.String, "seed": pl.Int64,
    "epoch": pl.Int64, "lr": pl.Float64, "tau": pl.Float64, "base_loss": pl.Float64, "base_acc": pl.Float64,
    "arch_loss": pl.Float64, "arch_acc": pl.Float64, "valid_loss": pl.Float64, "valid_acc": pl.Float64,
    "selection_acc": pl.Float64, "arch": pl.String, "arch_index": pl.Int64, "distribution": pl.List(pl.Float64),
    "entropy": pl.Float64, "controller_reward": pl.Float64, "controller_baseline": pl.Float64,
    "diverged": pl.Boolean,
}
SEARCH_KEYS = ["algorithm", "dataset", "seed", "selection", "epoch"]
SEARCH_TIMING_SCHEMA = {"algorithm": pl.String, "dataset": pl.String, "seed": pl.Int64, "selection": pl.String,
                        "epoch": pl.Int64, "search_seconds": pl.Float64, "eval_seconds": pl.Float64}


@dataclass(kw_only=True)
class SearchJob:
    algorithm: str
    dataset: str
    seed: int
    epochs: int
    data: Path
    out: Path
    timing_out: Path
    protocol: Protocol = field(default_factory=lambda: Protocol.weight_sharing())
    steps_per_epoch: int | None = None  # None: the whole training split, as NATS-Bench
    eval_batch_size: int = 512
    settings: Settings = field(default_factory=Settings)
    arch_optimizer: dict | None = None  # overrides of ARCH_OPTIMIZER[algorithm]
    pt: darts_pt.PtSettings | None = None  # darts-v1/v2: also select by perturbation at the end
    device: str = "auto"
    threads: int = 1

    @property
    def checkpoint(self) -> Path:
        return Path(self.out).with_suffix(".ckpt")

    def config(self, device: torch.device) -> dict:
        """What the bytes depend on; a checkpoint written under another config is not resumed."""
        return {"algorithm": self.algorithm, "dataset": self.dataset, "seed": self.seed, "epochs": self.epochs,
                "protocol": self.protocol.as_dict(), "steps_per_epoch": self.steps_per_epoch,
                "eval_batch_size": self.eval_batch_size, "settings": asdict(self.settings),
                "arch_optimizer": self.optimizer_settings(), "pt": asdict(self.pt) if self.pt else None,
                "device_type": device.type, "threads": self.threads, "cpu_isa": numerics.level()}

    def optimizer_settings(self) -> dict:
        return {**ARCH_OPTIMIZER[self.algorithm], **(self.arch_optimizer or {})}


def check_job(job: SearchJob) -> None:
    check_algorithm(job.algorithm)
    if job.epochs < 1 or (job.steps_per_epoch is not None and job.steps_per_epoch < 1):
        raise InputError(f"epochs ({job.epochs}) and steps_per_epoch ({job.steps_per_epoch}) must be >= 1")
    if job.pt is not None and not job.algorithm.startswith("darts"):
        raise InputError(f"darts-pt selection applies to darts-v1 and darts-v2, not {job.algorithm}")


def run_search(job: SearchJob) -> Path:
    """Search, resuming from the checkpoint when there is one, and write the job's tables."""
    check_job(job)
    environment.pin(job.threads)
    device = environment.resolve_device(job.device)
    splits = load_splits(Path(job.data), device)
    if splits.dataset != job.dataset:
        raise InputError(f"{job.data} holds {splits.dataset!r}, not {job.dataset!r}")
    if "valid" not in splits.evals:
        raise InputError(f"{job.data}: {job.dataset} has no validation split to search on; NATS-Bench searches "
                         "cifar10-valid (not cifar10), cifar100 and ImageNet16-120")
    config = job.config(device)
    torch.manual_seed(job.seed)  # the supernet's and alphas' initial weights
    search = make_search(job.algorithm, splits.num_classes, splits.in_channels, job.settings,
                         torch.Generator().manual_seed(job.seed + 1), device)
    w_optimizer = torch.optim.SGD(search.weight_parameters(), lr=job.protocol.lr, momentum=job.protocol.momentum,
                                  nesterov=job.protocol.nesterov, weight_decay=job.protocol.weight_decay)
    a = job.optimizer_settings()
    a_optimizer = torch.optim.Adam(search.arch_parameters(), lr=a["lr"], betas=(0.5, 0.999),
                                   weight_decay=a["weight_decay"], eps=a["eps"])
    data_generator = torch.Generator().manual_seed(job.seed)
    rows, timings, start = [], [], 0
    state = _load_checkpoint(job.checkpoint, config)
    if state is not None:
        search.net.load_state_dict(state["net"])
        for p, value in zip(search.arch_parameters(), state["arch"], strict=True):
            p.data.copy_(value)
        w_optimizer.load_state_dict(state["w_optimizer"])
        a_optimizer.load_state_dict(state["a_optimizer"])
        data_generator.set_state(state["data_generator"])
        search.generator.set_state(state["search_generator"])
        search.load_extra_state(state["extra"])
        rows, timings, start = state["rows"], state["timings"], state["epoch"]
        print(f"{job.out}: resuming after epoch {start} of {job.epochs} from {job.checkpoint}", file=sys.stderr)
    space = space_of(job.algorithm)
    diverged = bool(rows) and rows[-1]["diverged"]
    for epoch in range(start, job.epochs):
        if diverged:
            break
        row, timing = _epoch(job, search, splits, w_optimizer, a_optimizer, data_generator, epoch, device, space)
        rows.append(row)
        timings.append(timing)
        diverged = row["diverged"]
        _save_checkpoint(job.checkpoint, {
            "config": config, "epoch": epoch + 1, "net": search.net.state_dict(),
            "arch": [p.detach().clone() for p in search.arch_parameters()], "w_optimizer": w_optimizer.state_dict(),
            "a_optimizer": a_optimizer.state_dict(), "data_generator": data_generator.get_state(),
            "search_generator": search.generator.get_state(), "extra": search.extra_state(), "rows": rows,
            "timings": timings})
    if job.pt is not None and not diverged:
        begin = time.perf_counter()
        arch, valid_acc = darts_pt.select(search, job.pt, lambda: _train_batches(job, splits, data_generator),
                                          lambda: _valid_batches(job, splits, search.generator), w_optimizer)
        rows.append(_pt_row(rows[-1], arch, valid_acc, space))
        timings.append({"epoch": rows[-1]["epoch"], "search_seconds": time.perf_counter() - begin, "eval_seconds": 0.0})
    _write(job, rows, timings, device, config)
    job.checkpoint.unlink(missing_ok=True)
    return Path(job.out)


def _train_batches(job: SearchJob, splits: Splits, generator: torch.Generator):
    """The epoch's (training batch, validation batch) pairs: the training split in a fresh order, each
    batch paired with as many validation images drawn uniformly (NATS-Bench's ``SearchDataset``)."""
    images, labels = splits.train
    valid_images, valid_labels = splits.evals["valid"]
    b = job.protocol.batch_size
    order = torch.randperm(len(images), generator=generator).to(images.device)
    steps = math.ceil(len(images) / b)
    if job.steps_per_epoch is not None:
        steps = min(steps, job.steps_per_epoch)
    for i in range(steps):
        batch = order[i * b : (i + 1) * b]
        picks = torch.randint(len(valid_images), (len(batch),), generator=generator).to(images.device)
        aug = splits.augmentation.train
        x, xa = (aug(chosen, generator).contiguous(memory_format=torch.channels_last)
                 for chosen in (images[batch], valid_images[picks]))
        yield (i, steps), (x, labels[batch]), (xa, valid_labels[picks])


def _valid_batches(job: SearchJob, splits: Splits, generator: torch.Generator):
    """The validation split in a fresh random order (``SubsetRandomSampler``), unaugmented."""
    images, labels = splits.evals["valid"]
    order = torch.randperm(len(images), generator=generator).to(images.device)
    for start in range(0, len(images), job.eval_batch_size):
        pick = order[start : start + job.eval_batch_size]
        yield splits.augmentation.normalize(images[pick]).contiguous(memory_format=torch.channels_last), labels[pick]


def _epoch(job: SearchJob, search: Search, splits: Splits, w_optimizer, a_optimizer, data_generator, epoch: int,
           device: torch.device, space: str) -> tuple[dict, dict]:
    search.set_epoch(epoch, job.epochs)
    sync(device)
    begin = time.perf_counter()
    search.net.train()
    sums = {"base_loss": 0.0, "base_acc": 0.0, "arch_loss": 0.0, "arch_acc": 0.0}
    images = 0
    finite = True
    lr = job.protocol.lr_at(epoch, 0.0, job.epochs)
    for (i, steps), (x, y), arch in _train_batches(job, splits, data_generator):
        for group in w_optimizer.param_groups:
            group["lr"] = job.protocol.lr_at(epoch, i / steps, job.epochs)
        w_optimizer.zero_grad()
        logits = search.weight_logits(x)
        loss = search.criterion(logits, y)
        if not torch.isfinite(loss):
            finite = False
            break
        loss.backward()
        w_optimizer.step()
        arch_loss, arch_acc = search.arch_step((x, y), arch, w_optimizer, a_optimizer)
        n = len(y)
        sums["base_loss"] += loss.item() * n
        sums["base_acc"] += 100.0 * float((logits.argmax(1) == y).sum())
        sums["arch_loss"] += arch_loss * n
        sums["arch_acc"] += arch_acc * n
        images += n
    extra = search.end_epoch(lambda: _valid_batches(job, splits, search.generator), a_optimizer) if finite else {}
    sync(device)
    search_seconds = time.perf_counter() - begin
    identity = {"space": space, "algorithm": job.algorithm, "selection": _selection(job.algorithm),
                "dataset": job.dataset, "seed": job.seed, "epoch": epoch}
    if not finite:
        nan = float("nan")
        row = {**identity, "lr": lr, "tau": search.tau, **{k: nan for k in sums}, "valid_loss": nan, "valid_acc": nan,
               "selection_acc": None, "arch": None, "arch_index": None, "distribution": None, "entropy": None,
               "controller_reward": None, "controller_baseline": None, "diverged": True}
        return row, {"epoch": epoch, "search_seconds": search_seconds, "eval_seconds": 0.0}
    begin = time.perf_counter()
    with torch.no_grad():
        arch, selection_acc = search.select(lambda: _valid_batches(job, splits, search.generator))
        search.net.eval()
        loss_sum, hits, n = 0.0, 0, 0
        for x, y in _valid_batches(job, splits, search.generator):
            logits = search.eval_logits(x, arch)
            loss_sum += float(search.criterion(logits, y)) * len(y)
            hits += int((logits.argmax(1) == y).sum())
            n += len(y)
        search.net.train()
    distribution = search.distribution()
    sync(device)
    row = {**identity, "lr": lr, "tau": search.tau if _anneals(job.algorithm) else None,
           **{k: v / images for k, v in sums.items()}, "valid_loss": loss_sum / n, "valid_acc": 100.0 * hits / n,
           "selection_acc": selection_acc, "arch": arch, "arch_index": get_space(space).index(arch),
           "distribution": [p for row in distribution for p in row], "entropy": entropy(distribution),
           "controller_reward": extra.get("controller_reward"), "controller_baseline": extra.get("controller_baseline"),
           "diverged": False}
    return row, {"epoch": epoch, "search_seconds": search_seconds, "eval_seconds": time.perf_counter() - begin}


def _selection(algorithm: str) -> str:
    """How the algorithm derives its arch: NATS-Bench's ``argmax`` of the learnt distribution, or the
    best of scored ``candidates`` (SETN, RSPS, ENAS)."""
    return "candidates" if algorithm in ("setn", "random", "enas") else "argmax"


def _anneals(algorithm: str) -> bool:
    return algorithm in ("gdas", "tas", "mask_gumbel")


def _pt_row(last: dict, arch: str, valid_acc: float, space: str) -> dict:
    row = {k: None for k in SEARCH_SCHEMA}
    row.update({k: last[k] for k in ("space", "algorithm", "dataset", "seed", "epoch", "lr")})
    row.update({"selection": "darts-pt", "arch": arch, "arch_index": get_space(space).index(arch),
                "selection_acc": valid_acc, "diverged": False})
    return row


def _load_checkpoint(path: Path, config: dict) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        raise InputError(f"{path}: unreadable search checkpoint; delete it to start this search over") from None
    if state.get("config") != config:
        changed = sorted(k for k in config if config.get(k) != state.get("config", {}).get(k))
        raise InputError(f"{path}: a checkpoint of a search with other settings (differs in {changed}); rerun with "
                         "the original settings to resume, or delete it to start over")
    return state


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _write(job: SearchJob, rows: list[dict], timings: list[dict], device: torch.device, config: dict) -> None:
    meta = {"environment": environment.describe(device), "job": config}
    key = {"algorithm": job.algorithm, "dataset": job.dataset, "seed": job.seed}
    timing = pl.DataFrame([{**key, "selection": r["selection"], **t} for r, t in zip(rows, timings, strict=True)],
                          schema=SEARCH_TIMING_SCHEMA)
    write_table(timing, job.timing_out, SEARCH_KEYS, {**meta, "host": environment.host()})
    write_table(pl.DataFrame(rows, schema=SEARCH_SCHEMA), job.out, SEARCH_KEYS, meta)

