"""The reference engine: one architecture at a time, NATS-Bench's loop, plainly.

It is the yardstick every faster engine is checked against, so it stays
simple. Two choices make an arch's numbers independent of which shard (or
group) it runs in: the weights are drawn from a seed derived from (seed, arch
index) alone, and the data order and augmentation from a fresh generator
seeded by the seed alone, so every arch of a seed sees the same batches.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from nasforge.models import build_network
from nasforge.train.protocol import Protocol
from nasforge.train.splits import Splits


def init_seed(seed: int, arch_index: int) -> int:
    """The weight-init seed of an arch: a hash of (seed, index), not its position anywhere."""
    digest = hashlib.sha256(f"nasforge-init:{seed}:{arch_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def data_generator(seed: int) -> torch.Generator:
    """Data order and augmentation for one training run: from the seed alone."""
    return torch.Generator().manual_seed(seed)


def make_network(space: str, arch_index: int, seed: int, splits: Splits, device: torch.device) -> torch.nn.Module:
    """Weights drawn on the CPU (so identical on every device), then moved."""
    torch.manual_seed(init_seed(seed, arch_index))
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
    each as NATS-Bench anneals it per iteration. Every engine draws its data here, so every engine
    sees the same batches."""
    images, labels = splits.train
    n = len(images)
    iters = math.ceil(n / protocol.batch_size)
    order = torch.randperm(n, generator=generator).to(images.device)
    for i in range(iters):
        for group in optimizer.param_groups:
            group["lr"] = protocol.lr_at(epoch + i / iters, epochs)
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
             batch_size: int) -> tuple[float, float]:
    """(mean loss, accuracy in %) with BN in inference mode."""
    net.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for x, y in eval_batches(images, labels, splits, batch_size):
        logits = net(x)[1]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    n = len(images)
    return loss_sum.item() / n, 100.0 * correct.item() / n


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
    """Train one arch; return per-epoch metric rows and per-epoch timing rows.

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
    for epoch in range(epochs):
        lr_first = protocol.lr_at(epoch, epochs)
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
        for split in ("valid", "test"):
            if split in splits.evals:
                row[f"{split}_loss"], row[f"{split}_acc"] = evaluate(net, *splits.evals[split], splits, protocol.batch_size)
            else:
                row[f"{split}_loss"] = row[f"{split}_acc"] = None
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
    for split in ("valid", "test"):
        value = nan if split in splits.evals else None
        row[f"{split}_loss"] = row[f"{split}_acc"] = value
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
