"""File-level helpers shared by the phases: content hashes, checked writes and reads,
all-or-nothing folder writes.

Every intermediate a phase hands to the next (tables, the validation summary,
the headline metrics) is written with ``write_checked``: the bytes go to a
temporary sibling and are renamed into place, and their sha256 goes beside
them in ``NAME.sha256`` (``sha256sum -c`` reads it). The consumer reads the
file once with ``read_checked`` and parses those same bytes only if they match:
a flipped byte on disk, a half-copied file or a file swapped by hand is then a
clear error naming the file and the step that rewrites it, never numbers that
quietly reach a release (a corrupt parquet can decode to other values, or
crash the decoder outright).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from nasforge.errors import InputError, MissingInputError

CHECKSUM_SUFFIX = ".sha256"


class IntegrityError(InputError):
    """A file does not match the checksum its producer wrote (or has none); the message names the fix."""


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def write_checked(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, then its sha256 beside it.

    A reader that finds the new file with the old checksum (a kill between the two
    renames) gets an IntegrityError, not the wrong numbers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    for target, payload in ((path, data), (checksum_path(path), f"{digest}  {path.name}\n".encode())):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(payload)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def read_checked(path: Path | str, rewrite_hint: str = "rerun the step that writes it") -> bytes:
    """The bytes of ``path``, read once and returned only if they match its ``.sha256``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: not found; {rewrite_hint}")
    recorded = _recorded_digest(path, rewrite_hint)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded:
        raise IntegrityError(f"{path}: its bytes do not match {checksum_path(path).name} (changed or corrupted "
                             f"since it was written); delete it and {rewrite_hint}")
    return data


def _recorded_digest(path: Path, rewrite_hint: str) -> str:
    record = checksum_path(path)
    try:
        digest = record.read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        raise IntegrityError(f"{path}: no readable checksum {record.name} beside it, so its producer's bytes "
                             f"cannot be confirmed; {rewrite_hint}") from None
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise IntegrityError(f"{record}: not a sha256 checksum; {rewrite_hint}")
    return digest


def replace_dir(staging: Path, out: Path) -> None:
    """Put the finished ``staging`` folder at ``out``; the old ``out`` goes only once the new one is in place."""
    retired = out.parent / f".{out.name}.old"
    shutil.rmtree(retired, ignore_errors=True)
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
