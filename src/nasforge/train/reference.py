"""The reference engine: one architecture at a time, NATS-Bench's loop, plainly.

It is the yardstick every faster engine is checked against, so it stays
simple. Two choices make an arch's numbers independent of which shard (or
group) it runs in: the weights are drawn right after ``torch.manual_seed(seed)``,
as NATS-Bench's ``evaluate_for_seed`` draws them (so seed 777 gives NATS-Bench's
seed-777 initial weights), and the data order and augmentation come from a
fresh generator seeded by the seed alone, so every arch of a seed sees the
same batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from nasforge.models import build_network
from nasforge.train.protocol import Protocol
from nasforge.train.splits import Splits


# Splits evaluated after every epoch, in table-column order. ``valtest`` is NATS-Bench's
# ``ori-test`` on cifar100 and ImageNet16-120: the whole set that valid and test halve.
EVAL_SPLITS = ("valid", "test", "valtest")


def data_generator(seed: int) -> torch.Generator:
    """Data order and augmentation for one training run: from the seed alone."""
    return torch.Generator().manual_seed(seed)


def make_network(space: str, arch_index: int, seed: int, splits: Splits, device: torch.device) -> torch.nn.Module:
    """Weights drawn on the CPU (so identical on every device), then moved."""
    torch.manual_seed(seed)
    net = build_network(space, arch_index, splits.num_classes, splits.in_channels)
    # channels_last: oneDNN's NHWC kernels train these thin nets ~3x faster on CPU; cuDNN prefers it too.
    return net.to(device=device, memory_format=torch.channels_last)


def make_optimizer(net: torch.nn.Module, protocol: Protocol) -> torch.optim.SGD:
    """The protocol's SGD; its lr is set every iteration by ``train_batches``."""
    return torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                           nesterov=protocol.nesterov, weight_decay=protocol.weight_decay)


def train_batches(splits: Splits, protocol: Protocol, generator: torch.Generator, optimizer: torch.optim.Optimizer,
                  epoch: int, epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's augmented (images, labels) batches in the seed's order, setting the lr before
    each as NATS-Bench's scheduler does (``scheduler.update(None, i / iters)``). Every engine draws
    its data here, so every engine sees the same batches."""
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


@torch.no_grad()
def evaluate(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, splits: Splits,
             batch_size: int) -> tuple[float, int, int]:
    """(summed loss, correct predictions, images) with BN in inference mode."""
    net.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for x, y in eval_batches(images, labels, splits, batch_size):
        logits = net(x)[1]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    return loss_sum.item(), int(correct.item()), len(images)


def eval_metrics(sums: dict[str, tuple[float, int, int]], splits: Splits) -> dict[str, float | None]:
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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_arch(
    space: str,
    arch_index: int,
    seed: int,
    epochs: int,
    protocol: Protocol,
    splits: Splits,
    device: torch.device,
    on_epoch: Callable[[int], None] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Train one arch for ``epochs`` (the budget) plus the protocol's warm-up epochs; return
    per-epoch metric rows and per-epoch timing rows.

    A non-finite training loss marks that epoch and every later one
    ``diverged`` with NaN metrics; training of this arch stops there.
    """
    net = make_network(space, arch_index, seed, splits, device)
    optimizer = make_optimizer(net, protocol)
    generator = data_generator(seed)
    images = splits.train[0]
    n = len(images)
    metrics, timings = [], []
    diverged = False
    for epoch in range(epochs + protocol.warmup):
        lr_first = protocol.lr_at(epoch, 0.0, epochs)
        if diverged:
            metrics.append(diverged_row(epoch, lr_first, splits))
            timings.append({"epoch": epoch, "train_seconds": 0.0, "eval_seconds": 0.0})
            if on_epoch:
                on_epoch(epoch)
            continue
        sync(device)
        start = time.perf_counter()
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
        correct = torch.zeros((), dtype=torch.int64, device=images.device)
        for x, y in train_batches(splits, protocol, generator, optimizer, epoch, epochs):
            logits = net(x)[1]
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
        train_loss = loss_sum.item() / n
        sync(device)
        train_seconds = time.perf_counter() - start
        if not math.isfinite(train_loss):
            diverged = True
            metrics.append(diverged_row(epoch, lr_first, splits))
            timings.append({"epoch": epoch, "train_seconds": train_seconds, "eval_seconds": 0.0})
            if on_epoch:
                on_epoch(epoch)
            continue
        row = {"epoch": epoch, "lr": lr_first, "train_loss": train_loss, "train_acc": 100.0 * correct.item() / n}
        start = time.perf_counter()
        sums = {split: evaluate(net, *data, splits, protocol.batch_size) for split, data in splits.evals.items()}
        row.update(eval_metrics(sums, splits))
        sync(device)
        row["diverged"] = False
        metrics.append(row)
        timings.append({"epoch": epoch, "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - start})
        if on_epoch:
            on_epoch(epoch)
    return metrics, timings


def diverged_row(epoch: int, lr: float, splits: Splits) -> dict:
    nan = float("nan")
    row = {"epoch": epoch, "lr": lr, "train_loss": nan, "train_acc": nan, "diverged": True}
    present = eval_metrics({s: (nan, 0, 1) for s in splits.evals}, splits)
    row.update({k: None if v is None else nan for k, v in present.items()})
    return row


@torch.no_grad()
def measure_latency(net: torch.nn.Module, batch: int, shape: tuple[int, int, int], device: torch.device,
                    repeats: int) -> float:
    """Median milliseconds of an inference forward pass at ``batch``."""
    net.eval()
    x = torch.zeros((batch, *shape), device=device).contiguous(memory_format=torch.channels_last)
    net(x)  # warm-up: allocator and kernel selection
    samples = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        net(x)
        sync(device)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return samples[len(samples) // 2]
