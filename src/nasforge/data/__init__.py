"""The prepare phase: NATS-Bench's datasets and splits from local archives, plus the embedded mnist5k."""

from nasforge.data.loader import Augmentation, load_prepared, read_manifest
from nasforge.data.prepare import prepare
from nasforge.data.registry import DATASETS, DatasetSpec, get_dataset
from nasforge.data.sources import SourceError

__all__ = ["DATASETS", "Augmentation", "DatasetSpec", "SourceError", "get_dataset", "load_prepared", "prepare", "read_manifest"]
