"""The fused engine: a group of architectures trained as one computation, same protocol, same numbers.

Every member of a group trains under the same seed, so every member sees the
same batches (the seed's data order and augmentation); that is what lets a
group share one image batch per step. Everything else stays per member:
weights start from the member's own init (its reference network, copied in),
BN statistics live in the member's channels, the loss is the sum of the
members' mean cross-entropies (so each member's gradient is exactly its own),
and SGD is elementwise, so one optimiser over the stacked tensors is each
member's optimiser. The epoch loop, lr schedule and divergence rule are the
shared ``train.loop``: a diverged member's NaNs cannot reach another member (no
op mixes members), so the others train on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nasforge.models.fused import FusedNetwork, fuse
from nasforge.protocol import Protocol
from nasforge.train import reference
from nasforge.train.loop import Sums, eval_batches, train_members
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
             batch_size: int) -> list[Sums]:
    """Per member (summed loss, correct predictions, images) with BN in inference mode."""
    net.eval()
    loss_sum = torch.zeros(net.G, dtype=torch.float64, device=images.device)
    correct = torch.zeros(net.G, dtype=torch.int64, device=images.device)
    for x, y in eval_batches(images, labels, splits, batch_size):
        logits = net(x)
        loss_sum += member_losses(logits, y, "sum").double()
        correct += (logits.argmax(2) == y).sum(1)
    return [(loss, int(c), len(images)) for loss, c in zip(loss_sum.tolist(), correct.tolist(), strict=True)]


class StackedGroup:
    """A fused network as the loop's G members: the loss is the sum of the members' mean
    cross-entropies, so each member's gradient is exactly its own."""

    def __init__(self, net: FusedNetwork) -> None:
        self.net, self.G = net, net.G

    def train_step(self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        losses = member_losses(logits, y)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        return losses.detach(), (logits.detach().argmax(2) == y).sum(1)

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, splits: Splits, batch_size: int) -> list[Sums]:
        return evaluate(self.net, images, labels, splits, batch_size)


def train_group(space: str, arch_indices: list[int], seed: int, epochs: int, protocol: Protocol, splits: Splits,
                device: torch.device, on_epoch: Callable[[int], None] | None = None
                ) -> list[tuple[list[dict], list[dict]]]:
    """Train the group; per member, in order, what ``reference.train_arch`` returns for it alone."""
    return train_members(StackedGroup(make_fused(space, arch_indices, seed, splits, device)), seed, epochs,
                         protocol, splits, device, on_epoch)


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
