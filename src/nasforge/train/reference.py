"""The reference engine: one architecture at a time, NATS-Bench's loop, plainly.

It is the yardstick every faster engine is checked against, so it stays
simple: one network, ``F.cross_entropy`` on its logits, the shared loop of
``nasforge.train.loop``. Its weights are drawn right after
``torch.manual_seed(seed)``, as NATS-Bench's ``evaluate_for_seed`` draws them
(so seed 777 gives NATS-Bench's seed-777 initial weights), which makes an
arch's numbers independent of the shard (or group) it runs in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nasforge.models.networks import build_network
from nasforge.protocol import Protocol
from nasforge.train.loop import Sums, eval_batches, sync, train_members
from nasforge.train.splits import Splits


def make_network(space: str, arch_index: int, seed: int, splits: Splits, device: torch.device) -> torch.nn.Module:
    """Weights drawn on the CPU (so identical on every device), then moved."""
    torch.manual_seed(seed)
    net = build_network(space, arch_index, splits.num_classes, splits.in_channels)
    # channels_last: oneDNN's NHWC kernels train these thin nets ~3x faster on CPU; cuDNN prefers it too.
    return net.to(device=device, memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, splits: Splits,
             batch_size: int) -> Sums:
    """(summed loss, correct predictions, images) with BN in inference mode."""
    net.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for x, y in eval_batches(images, labels, splits, batch_size):
        logits = net(x)[1]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    return loss_sum.item(), int(correct.item()), len(images)


class SingleNetwork:
    """One network as the loop's single member."""

    G = 1

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net

    def train_step(self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)[1]
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach().reshape(1), (logits.detach().argmax(1) == y).sum().reshape(1)

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, splits: Splits, batch_size: int) -> list[Sums]:
        return [evaluate(self.net, images, labels, splits, batch_size)]


def train_arch(space: str, arch_index: int, seed: int, epochs: int, protocol: Protocol, splits: Splits,
               device: torch.device, on_epoch: Callable[[int], None] | None = None,
               on_trained: Callable[[torch.nn.Module], None] | None = None) -> tuple[list[dict], list[dict]]:
    """Train one arch for ``epochs`` (the budget) plus the protocol's warm-up epochs; return
    per-epoch metric rows and per-epoch timing rows. ``on_trained`` gets the trained network."""
    net = make_network(space, arch_index, seed, splits, device)
    result = train_members(SingleNetwork(net), seed, epochs, protocol, splits, device, on_epoch)[0]
    if on_trained is not None:
        on_trained(net)
    return result


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
