"""The training loop every engine shares: NATS-Bench's epochs, data order, lr and divergence rule.

An engine trains G members at once (the reference engine: one arch, G = 1;
the fused engine: a group stacked into one network) and supplies two things:
a training step returning each member's batch loss and correct count, and an
evaluation returning each member's sums. Everything else is decided here, once,
so the engines cannot disagree on it:

- the data: the seed's order and augmentation, drawn from a generator seeded
  by the seed alone (every arch of a seed sees the same batches);
- the lr: set before every iteration as NATS-Bench's scheduler does;
- divergence: a member whose epoch loss is not finite is marked ``diverged``
  with NaN metrics from that epoch on and charged no further time; once every
  member has diverged, training stops.

Timings are the members' shared seconds divided by G: what one arch cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Protocol as Interface

import torch

from nasforge.protocol import Protocol
from nasforge.train.splits import Splits

# Splits evaluated after every epoch, in table-column order. ``valtest`` is NATS-Bench's
# ``ori-test`` on cifar100 and ImageNet16-120: the whole set that valid and test halve.
EVAL_SPLITS = ("valid", "test", "valtest")

Sums = tuple[float, int, int]  # (summed loss, correct predictions, images)


class Members(Interface):
    """What an engine hands the loop: G members trained and evaluated together."""

    net: torch.nn.Module
    G: int

    def train_step(self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on a batch; each member's (mean loss, correct count), shapes (G,), detached."""

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, splits: Splits, batch_size: int) -> list[Sums]:
        """Each member's sums over an evaluation split, BN in inference mode."""


def data_generator(seed: int) -> torch.Generator:
    """Data order and augmentation for one training run: from the seed alone."""
    return torch.Generator().manual_seed(seed)


def make_optimizer(net: torch.nn.Module, protocol: Protocol) -> torch.optim.SGD:
    """The protocol's SGD; its lr is set every iteration by ``train_batches`` (SGD is elementwise,
    so one optimiser over a fused group's stacked tensors is each member's own optimiser)."""
    return torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                           nesterov=protocol.nesterov, weight_decay=protocol.weight_decay)


def train_batches(splits: Splits, protocol: Protocol, generator: torch.Generator, optimizer: torch.optim.Optimizer,
                  epoch: int, epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's augmented (images, labels) batches in the seed's order, setting the lr before
    each as NATS-Bench's scheduler does (``scheduler.update(None, i / iters)``)."""
    images, labels = splits.train
    n = len(images)
    iters = math.ceil(n / protocol.batch_size)
    order = torch.randperm(n, generator=generator).to(images.device)
    for i in range(iters):
        for group in optimizer.param_groups:
            group["lr"] = protocol.lr_at(epoch, i / iters, epochs)
        batch = order[i * protocol.batch_size : (i + 1) * protocol.batch_size]
        x = splits.augmentation.train(images[batch], generator).contiguous(memory_format=torch.channels_last)
        yield x, labels[batch]


def eval_batches(images: torch.Tensor, labels: torch.Tensor, splits: Splits,
                 batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An evaluation split in order, normalised, in batches."""
    for start in range(0, len(images), batch_size):
        x = splits.augmentation.normalize(images[start : start + batch_size]).contiguous(memory_format=torch.channels_last)
        yield x, labels[start : start + batch_size]


def eval_metrics(sums: dict[str, Sums], splits: Splits) -> dict[str, float | None]:
    """``{split}_loss`` (mean) and ``{split}_acc`` (%) of every column of ``EVAL_SPLITS``; None where
    the dataset has no such split. ``valtest`` pools the valid and test passes: the two halve the
    set NATS-Bench evaluates as ``ori-test``, so their sums are its sums, with no third pass."""
    sums = dict(sums)
    if splits.valtest:
        (lv, cv, nv), (lt, ct, nt) = sums["valid"], sums["test"]
        sums["valtest"] = (lv + lt, cv + ct, nv + nt)
    row: dict[str, float | None] = {}
    for split in EVAL_SPLITS:
        loss, correct, n = sums.get(split, (None, None, None))
        row[f"{split}_loss"] = None if n is None else loss / n
        row[f"{split}_acc"] = None if n is None else 100.0 * correct / n
    return row


def diverged_row(epoch: int, lr: float, splits: Splits) -> dict:
    nan = float("nan")
    row = {"epoch": epoch, "lr": lr, "train_loss": nan, "train_acc": nan, "diverged": True}
    present = eval_metrics({s: (nan, 0, 1) for s in splits.evals}, splits)
    row.update({k: None if v is None else nan for k, v in present.items()})
    return row


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_members(members: Members, seed: int, epochs: int, protocol: Protocol, splits: Splits,
                  device: torch.device, on_epoch: Callable[[int], None] | None = None
                  ) -> list[tuple[list[dict], list[dict]]]:
    """Train for ``epochs`` (the budget) plus the protocol's warm-up epochs; per member, in order,
    its per-epoch metric rows and timing rows."""
    G = members.G
    optimizer = make_optimizer(members.net, protocol)
    generator = data_generator(seed)
    images = splits.train[0]
    n = len(images)
    metrics: list[list[dict]] = [[] for _ in range(G)]
    timings: list[list[dict]] = [[] for _ in range(G)]
    diverged = [False] * G
    for epoch in range(epochs + protocol.warmup):
        lr_first = protocol.lr_at(epoch, 0.0, epochs)
        if not all(diverged):  # once every member has diverged, nothing is trained any more
            sync(device)
            start = time.perf_counter()
            members.net.train()
            loss_sum = torch.zeros(G, dtype=torch.float64, device=images.device)
            correct = torch.zeros(G, dtype=torch.int64, device=images.device)
            for x, y in train_batches(splits, protocol, generator, optimizer, epoch, epochs):
                losses, hits = members.train_step(x, y, optimizer)
                loss_sum += losses.double() * len(y)
                correct += hits
            train_loss = (loss_sum / n).tolist()
            train_acc = (100.0 * correct.double() / n).tolist()
            sync(device)
            train_seconds = (time.perf_counter() - start) / G
        for g in range(G):
            if diverged[g]:  # charged nothing after the epoch it diverged in
                metrics[g].append(diverged_row(epoch, lr_first, splits))
                timings[g].append({"epoch": epoch, "train_seconds": 0.0, "eval_seconds": 0.0})
            elif not math.isfinite(train_loss[g]):
                diverged[g] = True
                metrics[g].append(diverged_row(epoch, lr_first, splits))
                timings[g].append({"epoch": epoch, "train_seconds": train_seconds, "eval_seconds": 0.0})
        live = [g for g in range(G) if not diverged[g]]
        if live:
            start = time.perf_counter()
            sums = {split: members.evaluate(*data, splits, protocol.batch_size) for split, data in splits.evals.items()}
            sync(device)
            eval_seconds = (time.perf_counter() - start) / G
            for g in live:
                row = {"epoch": epoch, "lr": lr_first, "train_loss": train_loss[g], "train_acc": train_acc[g]}
                row.update(eval_metrics({split: per[g] for split, per in sums.items()}, splits))
                row["diverged"] = False
                metrics[g].append(row)
                timings[g].append({"epoch": epoch, "train_seconds": train_seconds, "eval_seconds": eval_seconds})
        if on_epoch:
            on_epoch(epoch)
    return list(zip(metrics, timings, strict=True))
