"""Reading a release's manifests and checking its files without trusting either.

A release folder may come from anywhere (a colleague's disk, a DVC remote, an
archive), so nothing in it is believed before it is checked: the manifest must
be a JSON object of the documented shape; every path it lists must stay inside
the release (no ``..``, no absolute path, no link on the way); and every entry
of the folder must be a plain file or folder, never a symbolic link (which
could point at any file of the reader's machine) or a FIFO or device (which
would block a reader forever). Files are opened without following links and
without blocking, and their type is checked again on the open descriptor, so a
file swapped for a link or a FIFO after the walk is refused too.

What this proves is integrity against the release's own manifest: that the
files are the ones the manifest lists. It does not prove who made the
release: anyone can rewrite files and manifest together. A published
manifest hash (or a signature over it) is what proves origin.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath

from nasforge.errors import InputError, MissingInputError

MANIFEST = "manifest.json"
MEASURED = "measured"
MANIFEST_LIMIT = 256 << 20  # bytes; a full NATS-Bench release's manifest is a few kB
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReleaseError(InputError):
    """The release folder is malformed or unsafe to read; the message names the file and the fix."""


def safe_relative(rel: object, manifest: Path) -> str:
    """A manifest path that stays inside the release, or ReleaseError."""
    if not isinstance(rel, str) or not rel:
        raise ReleaseError(f"{manifest}: file entry {rel!r} is not a path")
    path = PurePosixPath(rel)
    if path.is_absolute() or "\\" in rel or "\x00" in rel or any(p in ("", ".", "..") for p in rel.split("/")):
        raise ReleaseError(f"{manifest}: file entry {rel!r} leaves the release or is not a plain relative path; "
                           "a release lists only files inside its own folder")
    return rel


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path`` if it is a regular file reached through no link, else ReleaseError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ReleaseError(f"{path}: cannot be opened as a plain file ({err.strerror}); a release holds no links") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ReleaseError(f"{path}: not a regular file (a FIFO, device or folder); a release holds plain files only")
    return fd


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file of the release (see ``open_regular``)."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1 if limit else -1)
    if limit and len(data) > limit:
        raise ReleaseError(f"{path}: larger than {limit} bytes; not a nasforge manifest")
    return data


def file_sha256(path: Path) -> tuple[str, int]:
    """(sha256, size) of a regular file of the release, read through one safe descriptor."""
    digest, size = hashlib.sha256(), 0
    with os.fdopen(open_regular(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def unsafe_entries(folder: Path) -> list[str]:
    """Every link and special file under ``folder`` (links are not followed), as problems."""
    problems = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{path}: a symbolic link; a release holds only plain files (it could point "
                                "anywhere on the reader's machine): replace it with the file itself")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                problems.append(f"{path}: not a regular file (FIFO, socket or device); remove it")
    return problems


_FIELD_TYPES = {"params": dict, "name": str, "version": str, "environments": list, "source": dict, "space": str}


def read_manifest(path: Path, top: bool = True) -> dict:
    """A manifest as a checked dict: ``files`` maps safe relative paths to {sha256, bytes}."""
    path = Path(path)
    if not os.path.lexists(path):
        raise MissingInputError(f"{path}: missing; not a nasforge release (build one with `nasforge pipeline`)")
    try:
        manifest = json.loads(read_bytes(path, MANIFEST_LIMIT))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReleaseError(f"{path}: not valid JSON ({err}); restore it from the published release") from None
    except RecursionError:
        raise ReleaseError(f"{path}: nested deeper than any manifest nasforge writes; restore it from the published "
                           "release") from None
    if not isinstance(manifest, dict):
        raise ReleaseError(f"{path}: a JSON {type(manifest).__name__}, not an object; restore it from the published release")
    for key, kind in _FIELD_TYPES.items():  # what readers use: a wrong type is named here, not an AttributeError later
        if key in manifest and not isinstance(manifest[key], kind):
            raise ReleaseError(f"{path}: '{key}' is a JSON {type(manifest[key]).__name__}, expected "
                               f"{'an object' if kind is dict else 'a list' if kind is list else 'a string'}; "
                               "restore it from the published release")
    train = manifest.get("params", {}).get("train", {})
    if not isinstance(train, dict) or not (isinstance(train.get("threads", 1), int) and not isinstance(train.get("threads", 1), bool)
                                           and 1 <= train.get("threads", 1) <= 1024):
        raise ReleaseError(f"{path}: params.train is not an object with an integer 'threads' of 1..1024; restore it "
                           "from the published release")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ReleaseError(f"{path}: no 'files' object listing the release's files; restore it from the published release")
    if top and manifest.get("space") not in ("tss", "sss"):
        raise ReleaseError(f"{path}: 'space' is {manifest.get('space')!r}, expected 'tss' or 'sss'")
    for rel, entry in files.items():
        safe_relative(rel, path)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])
                and isinstance(entry.get("bytes"), int) and not isinstance(entry["bytes"], bool) and entry["bytes"] >= 0):
            raise ReleaseError(f"{path}: entry {rel!r} needs a 64-hex 'sha256' and a byte count 'bytes'")
    return manifest


# What every release holds, by how it was made (an import's manifest names its ``source``): a release
# whose manifest lists less is incomplete however well its listed files match (two imports racing for
# one folder once left one without tables/ that verified).
REQUIRED = ("DATACARD.md", "tables/archs.parquet", "tables/epochs.parquet", "tables/protocols.json")
REQUIRED_BY_KIND = {
    "built": ("tables/plan.parquet", "validation/validation.json"),
    "imported": ("tables/arch_times.parquet", "tables/run_costs.parquet", "tables/run_times.parquet",
                 "tables/source.json", "validation/audit.json"),
}


def _incomplete(manifest: dict) -> list[str]:
    kind = "imported" if "source" in manifest else "built"
    return [f"{MANIFEST}: lists no {rel}, which every {kind} release holds; the release is incomplete: "
            f"{'import' if kind == 'imported' else 'build'} it again"
            for rel in (*REQUIRED, *REQUIRED_BY_KIND[kind]) if rel not in manifest["files"]]


def verify(folder: Path | str) -> list[str]:
    """Every problem found: unsafe entries, changed, missing or unlisted files, in both manifests.
    Empty means the files are exactly those the manifests list."""
    folder = Path(folder)
    measured_rel = f"{MEASURED}/{MANIFEST}"
    try:
        manifests = [(MANIFEST, folder, read_manifest(folder / MANIFEST)),
                     (measured_rel, folder / MEASURED, read_manifest(folder / MEASURED / MANIFEST, top=False))]
    except (ReleaseError, FileNotFoundError) as err:
        return [str(err)]
    problems = unsafe_entries(folder)
    unsafe = {p.split(": ", 1)[0] for p in problems}
    problems += _incomplete(manifests[0][2])
    listed = {MANIFEST, measured_rel}
    for manifest_rel, base, manifest in manifests:
        for rel, entry in sorted(manifest["files"].items()):
            path = base / rel
            listed.add(path.relative_to(folder).as_posix())
            if str(path) in unsafe or any(str(parent) in unsafe for parent in path.parents):
                continue  # already reported, and never read
            try:
                size = os.lstat(path).st_size
                if size != entry["bytes"]:  # before any hashing: a 64 GB sparse file is refused in no time
                    problems.append(f"{path}: sha256 differs from {manifest_rel} (changed since release: {size} bytes "
                                    f"where it lists {entry['bytes']})")
                    continue
                digest, size = file_sha256(path)
            except FileNotFoundError:
                problems.append(f"{path}: listed in {manifest_rel} but missing")
                continue
            except (ReleaseError, OSError) as err:
                problems.append(str(err))
                continue
            if size != entry["bytes"] or digest != entry["sha256"]:
                problems.append(f"{path}: sha256 differs from {manifest_rel} (changed since release)")
    for root, _, files in os.walk(folder, followlinks=False):
        for name in sorted(files):
            path = Path(root) / name
            if path.relative_to(folder).as_posix() not in listed and str(path) not in unsafe:
                problems.append(f"{path}: not listed in any manifest (added since release)")
    return problems
