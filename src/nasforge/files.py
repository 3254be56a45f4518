"""File-level helpers shared by the phases: content hashes and all-or-nothing folder writes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def replace_dir(staging: Path, out: Path) -> None:
    """Put the finished ``staging`` folder at ``out``; the old ``out`` goes only once the new one is in place."""
    retired = out.parent / f".{out.name}.old"
    shutil.rmtree(retired, ignore_errors=True)
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
