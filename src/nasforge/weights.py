"""Trained weights as a release artefact: one content-addressed safetensors file per trained run.

NATS-Bench's "full" files and NAS-Bench-201's ``.pth`` carry each run's trained
state dict, and users ask for them (``get_net_param``) to fine-tune or
re-evaluate a network. A release keeps them beside its tables, never in them:
``weights/{sha256}.safetensors``, named by the sha256 of its own bytes (equal
weights are stored once; a swapped or altered file no longer matches its
name, nor the manifest, which lists every file), and ``tables/weights.parquet``
mapping each run (dataset, hp, arch_index, seed) to its file. safetensors
holds tensors and a JSON header only: loading one runs no code, unlike a
pickle. The header's metadata keeps the state dict's key order and torch's
per-module ``_metadata`` (BatchNorm's version), so what loads is the state
dict as it was trained. Nothing here is read until weights are asked for.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import OrderedDict
from pathlib import Path

import polars as pl

from nasforge.errors import InputError
from nasforge.files import write_checked

WEIGHTS_DIR = "weights"
WEIGHTS_TABLE = "weights.parquet"
WEIGHTS_SCHEMA = {"dataset": pl.String, "hp": pl.String, "arch_index": pl.Int64, "seed": pl.Int64,
                  "sha256": pl.String, "tensors": pl.Int64, "parameters": pl.Int64, "bytes": pl.Int64}
WEIGHTS_KEYS = ["dataset", "hp", "arch_index", "seed"]


def weights_file(sha: str) -> str:
    """A weights file's path inside a release."""
    return f"{WEIGHTS_DIR}/{sha}.safetensors"


def encode(state_dict, where: str) -> bytes:
    """A state dict as safetensors bytes: the same dict gives the same bytes (the header's keys are sorted)."""
    import torch
    from safetensors.torch import save

    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(f"{where}: its state dict holds {key!r}: {type(value).__name__}; trained weights are "
                             "tensors by name")
        tensors[key] = value.detach().to("cpu").clone().contiguous()  # clone: no two entries share a storage
    # One metadata key: safetensors keeps metadata in a hash map, whose order (so the bytes) varies by process.
    versions = getattr(state_dict, "_metadata", None) or {}
    metadata = {"nasforge": json.dumps({"order": list(state_dict), "torch_metadata": list(versions.items())},
                                       sort_keys=True)}
    return save(tensors, metadata=metadata)


def decode(data: bytes, where: str | Path) -> OrderedDict:
    """The state dict ``encode`` wrote, in its original order, with its ``_metadata``."""
    from safetensors.torch import load

    try:
        (length,) = struct.unpack("<Q", data[:8])
        metadata = json.loads((json.loads(data[8:8 + length]).get("__metadata__") or {}).get("nasforge", "{}"))
        order = metadata.get("order", [])
        tensors = load(data)
    except Exception as err:  # a damaged file: safetensors raises its own error types
        raise InputError(f"{where}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    if sorted(order) != sorted(tensors):
        raise InputError(f"{where}: its header's key order does not list its tensors; not written by nasforge")
    state = OrderedDict((key, tensors[key]) for key in order)
    versions = metadata.get("torch_metadata") or []  # [module, {"version": n}] pairs, in the module order
    if versions:
        state._metadata = OrderedDict(versions)
    return state


class WeightsWriter:
    """Collects runs' state dicts into ``{root}/weights/`` and their index, written by ``finish``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.rows: list[dict] = []

    def add(self, dataset: str, hp: str, index: int, seed: int, state_dict, where: str) -> None:
        self.add_encoded(dataset, hp, index, seed, encode(state_dict, where), where)

    def add_encoded(self, dataset: str, hp: str, index: int, seed: int, data: bytes, where: str) -> None:
        """A state dict ``encode`` already wrote (a train job's), stored as it is."""
        state_dict = decode(data, where)
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / weights_file(sha)
        if not path.exists():
            write_checked(path, data)  # with its .sha256, as every intermediate (a release drops those)
        self.rows.append({"dataset": dataset, "hp": hp, "arch_index": index, "seed": seed, "sha256": sha,
                          "tensors": len(state_dict), "parameters": sum(int(v.numel()) for v in state_dict.values()),
                          "bytes": len(data)})

    def finish(self, tables: Path) -> int:
        """Write ``tables/weights.parquet`` (nothing when no run carried weights); how many runs it lists."""
        from nasforge.tables import write_table

        if not self.rows:
            return 0
        frame = pl.DataFrame(self.rows, schema=WEIGHTS_SCHEMA)
        if frame.select(WEIGHTS_KEYS).is_duplicated().any():
            raise InputError(f"{tables}: two state dicts for one run (dataset, hp, arch, seed)")
        write_table(frame, Path(tables) / WEIGHTS_TABLE, WEIGHTS_KEYS)
        return frame.height


def load_weights(data: bytes, sha: str, where: str | Path) -> OrderedDict:
    """A run's state dict from its file's bytes, refused unless they hash to the name they are stored under."""
    if hashlib.sha256(data).hexdigest() != sha:
        raise InputError(f"{where}: its bytes do not hash to its name; the file was altered or swapped. Fetch the "
                         "release again or re-import it")
    return decode(data, where)


__all__ = ["WEIGHTS_DIR", "WEIGHTS_SCHEMA", "WEIGHTS_TABLE", "WeightsWriter", "decode", "encode", "load_weights",
           "weights_file"]
