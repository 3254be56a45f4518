"""The fused engine: a group of architectures trained as one computation, same protocol, same numbers.

Every member of a group trains under the same seed, so every member sees the
same batches (the seed's data order and augmentation); that is what lets a
group share one image batch per step. Everything else stays per member:
weights start from the member's own init (its reference network, copied in),
BN statistics live in the member's channels, the loss is the sum of the
members' mean cross-entropies (so each member's gradient is exactly its own),
and SGD is elementwise, so one optimiser over the stacked tensors is each
member's optimiser. A member whose epoch loss is not finite is marked
diverged from that epoch on, as the reference engine does; its NaNs cannot
reach another member (no op mixes members), so the others train on.

Timings are the group's seconds divided by its size: what an arch cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nasforge.models.fused import FusedNetwork, fuse
from nasforge.train import reference
from nasforge.train.protocol import Protocol
from nasforge.train.splits import Splits

OutOfMemory = torch.cuda.OutOfMemoryError


def make_fused(space: str, arch_indices: list[int], seed: int, splits: Splits, device: torch.device) -> FusedNetwork:
    """The members' reference networks (each from its own (seed, arch) init), stacked."""
    nets = [reference.make_network(space, i, seed, splits, device) for i in arch_indices]
    net = fuse(space, arch_indices, nets, splits.num_classes, splits.in_channels)
    return net.to(memory_format=torch.channels_last)


def member_losses(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each member, (G,): logits (G, batch, classes), labels (batch,)."""
    G, B, K = logits.shape
    losses = F.cross_entropy(logits.reshape(G * B, K), labels.repeat(G), reduction="none").view(G, B)
    return losses.mean(1) if reduction == "mean" else losses.sum(1)


@torch.no_grad()
def evaluate(net: FusedNetwork, images: torch.Tensor, labels: torch.Tensor, splits: Splits,
             batch_size: int) -> list[tuple[float, int, int]]:
    """Per member (summed loss, correct predictions, images) with BN in inference mode."""
    net.eval()
    loss_sum = torch.zeros(net.G, dtype=torch.float64, device=images.device)
    correct = torch.zeros(net.G, dtype=torch.int64, device=images.device)
    for x, y in reference.eval_batches(images, labels, splits, batch_size):
        logits = net(x)
        loss_sum += member_losses(logits, y, "sum").double()
        correct += (logits.argmax(2) == y).sum(1)
    return [(loss, int(c), len(images)) for loss, c in zip(loss_sum.tolist(), correct.tolist(), strict=True)]


def train_group(
    space: str,
    arch_indices: list[int],
    seed: int,
    epochs: int,
    protocol: Protocol,
    splits: Splits,
    device: torch.device,
    on_epoch: Callable[[int], None] | None = None,
) -> list[tuple[list[dict], list[dict]]]:
    """Train the group; per member, in order, what ``reference.train_arch`` returns for it alone."""
    net = make_fused(space, arch_indices, seed, splits, device)
    G = net.G
    optimizer = reference.make_optimizer(net, protocol)  # elementwise: each member's own SGD
    generator = reference.data_generator(seed)
    images = splits.train[0]
    n = len(images)
    metrics: list[list[dict]] = [[] for _ in range(G)]
    timings: list[list[dict]] = [[] for _ in range(G)]
    diverged = [False] * G
    for epoch in range(epochs + protocol.warmup):
        lr_first = protocol.lr_at(epoch, 0.0, epochs)
        reference.sync(device)
        start = time.perf_counter()
        net.train()
        loss_sum = torch.zeros(G, dtype=torch.float64, device=images.device)
        correct = torch.zeros(G, dtype=torch.int64, device=images.device)
        for x, y in reference.train_batches(splits, protocol, generator, optimizer, epoch, epochs):
            logits = net(x)
            losses = member_losses(logits, y)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            loss_sum += losses.detach().double() * len(y)
            correct += (logits.detach().argmax(2) == y).sum(1)
        train_loss = (loss_sum / n).tolist()
        train_acc = (100.0 * correct.double() / n).tolist()
        reference.sync(device)
        train_seconds = (time.perf_counter() - start) / G
        for g in range(G):
            if not diverged[g] and not math.isfinite(train_loss[g]):
                diverged[g] = True
                metrics[g].append(reference.diverged_row(epoch, lr_first, splits))
                timings[g].append({"epoch": epoch, "train_seconds": train_seconds, "eval_seconds": 0.0})
            elif diverged[g]:
                metrics[g].append(reference.diverged_row(epoch, lr_first, splits))
                timings[g].append({"epoch": epoch, "train_seconds": 0.0, "eval_seconds": 0.0})
        live = [g for g in range(G) if not diverged[g]]
        if live:
            start = time.perf_counter()
            sums = {split: evaluate(net, *data, splits, protocol.batch_size) for split, data in splits.evals.items()}
            reference.sync(device)
            eval_seconds = (time.perf_counter() - start) / G
            for g in live:
                row = {"epoch": epoch, "lr": lr_first, "train_loss": train_loss[g], "train_acc": train_acc[g]}
                row.update(reference.eval_metrics({split: per[g] for split, per in sums.items()}, splits))
                row["diverged"] = False
                metrics[g].append(row)
                timings[g].append({"epoch": epoch, "train_seconds": train_seconds, "eval_seconds": eval_seconds})
        if on_epoch:
            on_epoch(epoch)
    return list(zip(metrics, timings, strict=True))


def train_split_on_oom(space: str, arch_indices: list[int], seed: int, epochs: int, protocol: Protocol,
                       splits: Splits, device: torch.device, on_epoch: Callable[[int], None] | None = None,
                       train: Callable[..., list] | None = None) -> list[tuple[list[dict], list[dict]]]:
    """``train_group``, and when the group runs out of memory, each half of it, recursively.

    Nothing is lost by a retry: a member's training depends on its (seed, arch), not on its
    group, so a half retrained from scratch computes what the whole group would have (the
    same arithmetic, up to the kernels' rounding for a different group width). Out of
    memory is deterministic for a plan on one GPU kind, so a rerun splits the same way.
    A single arch that does not fit re-raises: no split can help it.
    """
    train = train or train_group
    try:
        return train(space, arch_indices, seed, epochs, protocol, splits, device, on_epoch)
    except OutOfMemory:
        if len(arch_indices) == 1:
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        half = len(arch_indices) // 2
        return [*train_split_on_oom(space, arch_indices[:half], seed, epochs, protocol, splits, device, on_epoch, train),
                *train_split_on_oom(space, arch_indices[half:], seed, epochs, protocol, splits, device, on_epoch, train)]
