"""Resuming ``nasforge pipeline`` after it was killed, without retraining what is done.

A SIGKILL leaves two things behind in ``.snakemake/``: a lock (the next run
would stop with Snakemake's LockException) and "incomplete" marks on the
outputs of the jobs that were running (the next run would delete those outputs
and redo the jobs). Training jobs are the costly ones, and their children often
finish after Snakemake itself died. So before a run, when no Snakemake process
works in this folder any more:

- the stale lock is removed (``snakemake --unlock``), and
- every train shard whose three tables are complete and match the checksum
  its job wrote is cleared of its incomplete mark (``snakemake
  --cleanup-metadata``), so it is kept; a shard that is not complete keeps its
  mark, and its job resumes from the archs it had committed to ``.parts/``.

Reading the marks relies on Snakemake's file-based metadata layout (one file
per output, named by the urlsafe base64 of its path, split into chunks of at
most NAME_MAX characters); nasforge pins Snakemake, and a test kills a real
run to keep this honest.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from nasforge.files import IntegrityError, read_checked
from nasforge.paths import RESULTS

SHARD_KINDS = ("", "timing", "cost")


def _pattern(template: str) -> re.Pattern:
    """A regex matching the paths of a ``nasforge.paths`` template, one group per wildcard."""
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


SHARD_FILES = [_pattern(RESULTS.shard(kind=kind)) for kind in SHARD_KINDS]


def snakemake_running_in(folder: Path) -> list[int]:
    """PIDs of Snakemake processes whose working folder is ``folder`` (Linux /proc; empty elsewhere)."""
    folder = folder.resolve()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if not any(b"snakemake" in part for part in cmdline[:3]) or int(proc.name) == os.getpid():
                continue
            if Path(os.readlink(proc / "cwd")).resolve() == folder:
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return sorted(pids)


def stale_locks(folder: Path) -> bool:
    locks = folder / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def incomplete_outputs(folder: Path) -> list[str]:
    """The output paths Snakemake marked incomplete (jobs started and never recorded as done)."""
    root = folder / ".snakemake" / "incomplete"
    if not root.is_dir():
        return []
    paths = []
    for record in root.rglob("*"):
        if not record.is_file() or record.name == "migration_underway":
            continue
        chunks = record.relative_to(root).parts
        encoded = "".join(c.removeprefix("@") for c in chunks)
        try:
            paths.append(base64.urlsafe_b64decode(encoded.encode()).decode())
        except (binascii.Error, UnicodeDecodeError):
            continue
    return sorted(paths)


def finished_shards(folder: Path, outputs: list[str]) -> list[str]:
    """Of ``outputs``, the files of train shards whose three tables are complete and intact."""
    shards = set()
    for path in outputs:
        for pattern in SHARD_FILES:
            m = pattern.match(path)
            if m:
                shards.add(tuple(sorted(m.groupdict().items())))
    keep = []
    for shard in sorted(shards):
        trio = [RESULTS.shard(**dict(shard), kind=kind) for kind in SHARD_KINDS]
        try:
            for path in trio:
                read_checked(folder / path)
        except (FileNotFoundError, IntegrityError):
            continue
        if (folder / trio[0]).with_suffix(".parts").exists():
            continue  # assembled but not yet cleaned up: let the job finish that
        keep += trio
    return keep
