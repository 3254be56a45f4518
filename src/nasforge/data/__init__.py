"""The data phase: verify a dataset's official source and write it, with NATS-Bench's splits, as
arrays and a manifest. Loading onto a device (``loader``) needs torch and is imported by name."""

from nasforge.data.prepare import prepare, read_manifest
from nasforge.data.registry import DATASETS, DatasetSpec, get_dataset
from nasforge.data.sources import SourceError

__all__ = ["DATASETS", "DatasetSpec", "SourceError", "get_dataset", "prepare", "read_manifest"]
