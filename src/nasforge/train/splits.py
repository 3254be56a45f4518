"""A prepared dataset loaded once onto the training device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nasforge.data.loader import Augmentation, load_prepared
from nasforge.data.prepare import MANIFEST, read_manifest


@dataclass
class Splits:
    train: tuple[torch.Tensor, torch.Tensor]
    evals: dict[str, tuple[torch.Tensor, torch.Tensor]]  # "valid"/"test" -> (images, labels)
    augmentation: Augmentation
    num_classes: int
    in_channels: int
    dataset: str
    valtest: bool = False  # valid and test halve one set, NATS-Bench's ori-test (cifar100, ImageNet16-120)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train[0].shape[1:])


def load_splits(folder: Path | str, device: torch.device) -> Splits:
    """Training split plus the dataset's evaluation splits, all on ``device``; ``folder`` is the prepared
    dataset's folder or its manifest.json (what the pipeline's rules declare)."""
    folder = Path(folder).parent if Path(folder).name == MANIFEST else Path(folder)
    manifest = read_manifest(folder)
    return Splits(
        train=load_prepared(folder, "train", device),
        evals={s: load_prepared(folder, s, device) for s in manifest["eval_splits"]},
        augmentation=Augmentation.from_manifest(manifest),
        num_classes=manifest["num_classes"],
        in_channels=manifest["shape"][0],
        dataset=manifest["dataset"],
        valtest=manifest.get("valtest", False),
    )
