"""NATS-Bench's two network skeletons, built from an arch of either space."""

from __future__ import annotations

import torch
from torch import nn

from nasforge.models.ops import InferCell, ResNetBasicblock
from nasforge.spaces import get_space, sss, tss

TSS_CHANNELS = 16  # C of the first stage; doubled at each reduction.
TSS_CELLS_PER_STAGE = 5  # N


def layer_plan(space: str, arch: str) -> tuple[tuple[str, ...], list[tuple[int, bool]]]:
    """The cell ops and the (channels, is_reduction) of every layer after the stem.

    One plan drives both the torch module and the analytic cost model, so the
    two can only disagree on arithmetic, which the tests check.
    """
    name = get_space(space).name
    if name == "tss":
        ops = tss.parse_arch(arch)
        n, c = TSS_CELLS_PER_STAGE, TSS_CHANNELS
        layers = [(c, False)] * n + [(2 * c, True)] + [(2 * c, False)] * n + [(4 * c, True)] + [(4 * c, False)] * n
        return ops, layers
    channels = sss.parse_arch(arch)
    reductions = (False, True, False, True, False)
    return tss.parse_arch(sss.FIXED_CELL), list(zip(channels, reductions, strict=True))


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
