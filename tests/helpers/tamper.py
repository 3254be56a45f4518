"""One battery of tamperings, run against releases made every way nasforge makes them.

``test_hostile.py`` checks each refusal in detail on a fabricated release; this battery repeats the
ones that depend on a release's shape (its kind, space, datasets, budgets, tables) on a release the
pipeline built and on an imported one, so no check holds only for the shape the fabricator happens to write.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from nasforge.api import Benchmark, create
from nasforge.publish.diff import diff_releases
from nasforge.release import ReleaseError, verify
from nasforge.tables import read_metadata, write_table


def rehash(release: Path, rel: str) -> None:
    """Update one file's manifest entry, as someone re-hashing a tampered release would."""
    manifest_path = release / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data = (release / rel).read_bytes()
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest))


def _edit_manifest(release: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    change(manifest)
    (release / "manifest.json").write_text(json.dumps(manifest))


def _lacking(release: Path) -> None:
    (release / "tables/epochs.parquet").unlink()
    _edit_manifest(release, lambda m: m["files"].pop("tables/epochs.parquet"))
    assert any("lists no tables/epochs.parquet" in p for p in verify(release))


def _sparse(release: Path) -> None:
    victim = release / "tables/archs.parquet"
    victim.unlink()
    with open(victim, "wb") as f:
        f.truncate(64 << 30)
    changed = f"{victim}: sha256 differs from manifest.json (changed since release: {64 << 30} bytes"
    assert any(p.startswith(changed) for p in verify(release))
    with pytest.raises(ReleaseError, match="bytes where it lists"):
        Benchmark.open(release)


def _other_space(release: Path) -> None:
    space = json.loads((release / "manifest.json").read_text())["space"]
    other = "sss" if space == "tss" else "tss"
    _edit_manifest(release, lambda m: m.update(space=other))
    with pytest.raises(ReleaseError, match=f"not the {other} space's arch"):
        Benchmark.open(release)


def _kind_flipped_with_impossible_values(release: Path) -> None:
    _edit_manifest(release, lambda m: m.pop("source") if "source" in m else m.update(source={"layout": "nats-simple"}))
    path = release / "tables/archs.parquet"
    archs = pl.read_parquet(path).with_columns(test_acc_mean=pl.lit(-7.0))
    write_table(archs, path, ["dataset", "hp", "arch_index"], read_metadata(path))
    rehash(release, "tables/archs.parquet")
    with pytest.raises(ReleaseError, match=r"test_acc outside 0\.\.100"):
        Benchmark.open(release)


def _truncated_epochs(release: Path) -> None:
    path = release / "tables/epochs.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rehash(release, "tables/epochs.parquet")
    bench = Benchmark.open(release)
    api = create(release, bench.space, fast_mode=True, verbose=False)
    with pytest.raises(ReleaseError, match=r"epochs\.parquet: not a readable parquet table"):
        api.get_more_info(int(bench.indices[0]), bench.datasets[0], iepoch=0, hp=bench.budgets[0])


def _edited_protocols(release: Path) -> None:
    path = release / "tables/protocols.json"
    path.write_text(path.read_text().replace('"lr"', '"lr" ', 1))
    with pytest.raises(ReleaseError, match="does not verify"):
        diff_releases(release, release)


BATTERY = (_lacking, _sparse, _other_space, _kind_flipped_with_impossible_values, _truncated_epochs, _edited_protocols)


def run_battery(release: Path, scratch: Path) -> None:
    """Each tampering on its own fresh copy of ``release``, which must verify untouched."""
    assert verify(release) == []
    for tamper in BATTERY:
        copy = scratch / tamper.__name__.strip("_")
        shutil.copytree(release, copy)
        for path in copy.rglob("*"):
            if path.is_file():
                path.chmod(0o644)  # a built release is read-only
        tamper(copy)
