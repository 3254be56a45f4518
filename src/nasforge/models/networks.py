"""NATS-Bench's two network skeletons, built from an arch of either space."""

from __future__ import annotations

import torch
from torch import nn

from nasforge.models.cost import layer_plan
from nasforge.models.ops import InferCell, ResNetBasicblock
from nasforge.spaces import get_space


class GlobalAvgPool(nn.Module):
    """NATS-Bench's AdaptiveAvgPool2d(1) as a plain mean: the same function and no
    parameters, but its CUDA backward is deterministic (AdaptiveAvgPool2d's is
    not, and refuses to run under torch.use_deterministic_algorithms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class TinyNetwork(nn.Module):
    """Stem conv+BN, the layer plan's cells and residual blocks, BN-ReLU, global
    pool, linear. ``forward`` returns ``(features, logits)`` as NATS-Bench's
    networks do, so NAS code written against them runs unchanged."""

    def __init__(self, ops: tuple[str, ...], layers: list[tuple[int, bool]], num_classes: int, in_channels: int) -> None:
        super().__init__()
        c_prev = layers[0][0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_prev, 3, padding=1, bias=False), nn.BatchNorm2d(c_prev))
        self.cells = nn.ModuleList()
        for c_out, reduction in layers:
            cell = ResNetBasicblock(c_prev, c_out) if reduction else InferCell(ops, c_prev, c_out)
            self.cells.append(cell)
            c_prev = c_out
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        features = self.global_pooling(self.lastact(x))
        return features, self.classifier(features)


def build_network(space: str, arch: str | int, num_classes: int, in_channels: int = 3) -> TinyNetwork:
    """The network NATS-Bench trains for ``arch`` (string or index) of ``space``.

    Weights come from torch's global generator: seed it before calling when
    the init must be reproducible (the trainer does, from (seed, arch index)).
    """
    if isinstance(arch, int):
        arch = get_space(space).arch(arch)
    ops, layers = layer_plan(space, arch)
    return TinyNetwork(ops, layers, num_classes, in_channels)
