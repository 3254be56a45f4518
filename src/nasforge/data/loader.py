"""Prepared data onto the device, and NATS-Bench's augmentation as batched tensor ops.

No DataLoader and no workers: a prepared split is one uint8 tensor that lives
on the device (CIFAR-10 train is 150 MB), and each batch is augmented there in
a handful of kernels. Every random draw comes from an explicit CPU
``torch.Generator`` and is moved to the device afterwards, so one seed gives
the same crops and flips on CPU and on CUDA.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasforge.data.prepare import MANIFEST, read_manifest
from nasforge.errors import InputError, MissingInputError
from nasforge.files import IntegrityError


def load_prepared(path: Path | str, split: str, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images uint8 (N,C,H,W), labels int64 (N,))`` of one prepared split, on ``device``."""
    manifest = read_manifest(path)
    if split not in manifest["splits"]:
        raise InputError(f"{path}: no split {split!r}; this dataset has {sorted(manifest['splits'])}")
    images = torch.from_numpy(_load_checked(Path(path), f"{split}_images.npy", manifest))
    labels = torch.from_numpy(_load_checked(Path(path), f"{split}_labels.npy", manifest))
    return images.to(device), labels.to(device)


def _load_checked(folder: Path, name: str, manifest: dict) -> np.ndarray:
    """One prepared array, read once and loaded only if its bytes match the sha256 ``prepare`` recorded."""
    file = folder / name
    expected = manifest.get("files", {}).get(name)
    fix = f"re-create it with `nasforge prepare {manifest.get('dataset', 'DATASET')}`"
    if not file.is_file():
        raise MissingInputError(f"{file}: missing from the prepared dataset; {fix}")
    data = file.read_bytes()
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        raise IntegrityError(f"{file}: its bytes do not match the sha256 in {folder / MANIFEST} "
                             f"(changed or corrupted since it was prepared); {fix}")
    return np.load(io.BytesIO(data), allow_pickle=False)


@dataclass(frozen=True)
class Augmentation:
    """NATS-Bench's training transform: random horizontal flip, random crop
    from a zero-padded image, then per-channel normalisation."""

    mean: tuple[float, ...]  # 0-255 scale
    std: tuple[float, ...]
    crop_padding: int
    hflip: bool

    @classmethod
    def from_manifest(cls, manifest: dict) -> Augmentation:
        return cls(tuple(manifest["mean"]), tuple(manifest["std"]), manifest["crop_padding"], manifest["hflip"])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,C,H,W) -> float32, as used for evaluation (no randomness)."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return ((images.float() - mean) / std).contiguous()

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment and normalise a uint8 batch; draws come from ``generator`` (a CPU generator)."""
        batch, _, height, width = images.shape
        device = images.device
        if self.hflip:
            flip = (torch.rand(batch, generator=generator) < 0.5).to(device)
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
        if self.crop_padding:
            p = self.crop_padding
            offsets = torch.randint(0, 2 * p + 1, (2, batch), generator=generator).to(device)
            padded = F.pad(images, (p, p, p, p)).permute(0, 2, 3, 1)  # B, H+2p, W+2p, C
            rows = offsets[0].view(-1, 1, 1) + torch.arange(height, device=device).view(1, -1, 1)
            cols = offsets[1].view(-1, 1, 1) + torch.arange(width, device=device).view(1, 1, -1)
            images = padded[torch.arange(batch, device=device).view(-1, 1, 1), rows, cols].permute(0, 3, 1, 2)
        return self.normalize(images)
