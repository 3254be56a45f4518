"""Parquet in and out, the same way everywhere: typed, sorted, atomic, byte-stable.

Every table nasforge writes goes through ``write_table``: rows sorted by the
given keys, written to a temporary sibling and renamed into place, so a reader
(or a job killed mid-write) never sees half a file, and the same rows always
give the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

META_PREFIX = "nasforge."


def write_table(frame: pl.DataFrame, path: Path | str, sort_by: list[str], metadata: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.sort(sort_by, maintain_order=True)
    meta = {f"{META_PREFIX}{k}": json.dumps(v, sort_keys=True) for k, v in sorted((metadata or {}).items())}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True, metadata=meta or None)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The nasforge key-value metadata of a parquet file, decoded."""
    raw = pl.read_parquet_metadata(path)
    return {k[len(META_PREFIX):]: json.loads(v) for k, v in raw.items() if k.startswith(META_PREFIX)}
