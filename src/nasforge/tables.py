"""Parquet in and out, the same way everywhere: typed, sorted, atomic, byte-stable, checked.

Every table nasforge writes goes through ``write_table``: rows sorted by the
given keys, written to a temporary sibling and renamed into place, so a reader
(or a job killed mid-write) never sees half a file, and the same rows always
give the same bytes. Its sha256 goes beside it (``files.write_checked``), and
every phase reads its inputs with ``read_table``, which parses the bytes only
once they match: a flipped byte in a shard cannot decode into other numbers
that aggregation and validation would accept.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import polars as pl
from polars.exceptions import PanicException

from nasforge.files import IntegrityError, read_checked, write_checked

META_PREFIX = "nasforge."


def write_table(frame: pl.DataFrame, path: Path | str, sort_by: list[str], metadata: dict[str, Any] | None = None) -> Path:
    frame = frame.sort(sort_by, maintain_order=True)
    meta = {f"{META_PREFIX}{k}": json.dumps(v, sort_keys=True) for k, v in sorted((metadata or {}).items())}
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True, metadata=meta or None)
    return write_checked(path, buffer.getvalue())


def read_table(path: Path | str, rewrite_hint: str = "rerun the step that writes it") -> pl.DataFrame:
    """A table written by ``write_table``, refused unless its bytes match the recorded sha256."""
    data = read_checked(path, rewrite_hint)
    return decode(data, path, rewrite_hint)


def read_table_and_metadata(path: Path | str, rewrite_hint: str = "rerun the step that writes it"
                            ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """A checked table and its nasforge metadata, both from the one verified read."""
    data = read_checked(path, rewrite_hint)
    frame = decode(data, path, rewrite_hint)
    return frame, _decode_metadata(pl.read_parquet_metadata(io.BytesIO(data)))


def decode(data: bytes, path: Path | str, rewrite_hint: str = "rebuild it") -> pl.DataFrame:
    """Parse parquet bytes; a file polars cannot decode is a one-line error, never a panic."""
    try:
        return pl.read_parquet(io.BytesIO(data))
    except (PanicException, pl.exceptions.PolarsError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise IntegrityError(f"{path}: not a readable parquet table ({first}); {rewrite_hint}") from None


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The nasforge key-value metadata of a parquet file, decoded."""
    return _decode_metadata(pl.read_parquet_metadata(path))


def _decode_metadata(raw: dict[str, str]) -> dict[str, Any]:
    return {k[len(META_PREFIX):]: json.loads(v) for k, v in raw.items() if k.startswith(META_PREFIX)}
