"""The import phase: a published NATS-Bench or NAS-Bench-201 file as a nasforge release.

``import_release`` reads the source one arch at a time through an unpickler
that runs nothing (``unpickle.py``), converts its runs into the tables a build
writes plus what NATS-Bench recorded beyond them (``convert.py``), audits them
(``audit.py``), draws the analysis figures and writes the release: the same
layout and manifest as a built one, with ``tables/run_times.parquet``,
``tables/run_costs.parquet``, ``tables/arch_times.parquet`` (NATS-Bench's
recorded seconds, deterministic, so outside ``measured/``) and
``tables/source.json`` (every source file's name, size and sha256). Nothing
is written at the release's path unless the whole import succeeds.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

import nasforge
from nasforge.errors import InputError
from nasforge.files import CHECKSUM_SUFFIX, replace_dir, write_checked
from nasforge.imports.audit import AuditSettings, audit
from nasforge.imports.convert import Converter
from nasforge.imports.sources import open_source
from nasforge.imports.unpickle import SkippedWeights
from nasforge.paths import PROTOCOLS
from nasforge.protocol import Protocol
from nasforge.release.manifest import MANIFEST, MEASURED
from nasforge.schema import NATS_BUDGETS, epochs_of
from nasforge.spaces import get_space
from nasforge.weights import WeightsWriter

SOURCE_FILE = "source.json"


def _check_meta(meta_archs: list[str], space: str, path: Path) -> None:
    expected = list(get_space(space))
    if meta_archs == expected:
        return
    if len(meta_archs) != len(expected):
        raise InputError(f"{path}: holds {len(meta_archs)} archs, the {space} space has {len(expected)}; is it a "
                         f"{'tss' if space == 'sss' else 'sss'} file? Pass the matching --space")
    first = next(i for i, (a, b) in enumerate(zip(meta_archs, expected, strict=True)) if a != b)
    raise InputError(f"{path}: arch {first} is {meta_archs[first]!r} where NATS-Bench's {space} order has "
                     f"{expected[first]!r}; nasforge imports NATS-Bench's index order only")


def check_out(source: Path, out: Path) -> None:
    """Refuse an ``out`` whose replacement could destroy data: the source itself, a folder holding it or one
    inside it, or anything at ``out`` that is not a nasforge release (a file, another folder)."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or dst in src.parents or src in dst.parents:
        raise InputError(f"--out {out}: {'is' if dst == src else 'holds' if dst in src.parents else 'lies inside'} "
                         f"the source {source}; an import replaces --out whole, so it must lie outside the source. "
                         "Choose another --out; nothing was written")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"--out {out}: exists and is not a folder; an import replaces only a release it wrote. "
                         "Remove it or choose another --out; nothing was touched")
    if out.is_dir() and any(out.iterdir()):
        try:
            manifest = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = None
        if not (isinstance(manifest, dict) and "nasforge" in manifest and isinstance(manifest.get("files"), dict)):
            raise InputError(f"--out {out}: a folder that is not a nasforge release (no release manifest.json); an "
                             "import replaces only a release. Choose another --out; nothing was touched")


def _lock_parent(folder: Path) -> int:
    """An exclusive lock on ``folder`` (its descriptor), held until closed: a second import into the same
    folder waits for the first to finish rather than sharing or deleting its staging."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def import_release(source_path: Path | str, space: str, out: Path | str, version: str = "1.0.0",
                   settings: AuditSettings | None = None, chunk: int = 256, weights: bool = False) -> dict:
    """Convert, audit and publish ``source_path`` as the release folder ``out``; return its summary.
    ``weights``: also import the trained weights "full" files and NB-201's ``.pth`` carry (``weights/``)."""
    from nasforge.analysis import figures, headline
    from nasforge.release import code_version
    from nasforge.release.datacard import import_datacard

    out = Path(out)
    check_out(Path(source_path), out)
    source = open_source(source_path, weights)  # a refused pickle stops here, before anything is written
    _check_meta(source.meta_archs, space, source.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_parent(out.parent)  # imports into one folder take turns: each replaces out whole, in order
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))  # this run's own
    except BaseException:
        os.close(lock)  # the try below releases it from here on
        raise
    SkippedWeights.count = 0
    try:
        tables = staging / "tables"
        converter = Converter(space, staging / ".parts", chunk)
        stored = WeightsWriter(staging)
        dropped = 0  # tensors a .pth held that were not asked for
        for index, by_hp in source.archs():
            if not 0 <= index < len(source.meta_archs):
                raise InputError(f"{source.path}: arch {index} is outside the {len(source.meta_archs)} archs of its "
                                 "meta_archs; the source is damaged or mixes two benchmarks")
            for hp, state in by_hp.items():
                arch = state.get("arch_str")
                if arch is not None and arch != source.meta_archs[index]:
                    raise InputError(f"{source.path}: arch {index} [{hp}] says {arch!r} but meta_archs has "
                                     f"{source.meta_archs[index]!r}")
                for (dataset, seed), run in state["all_results"].items():
                    trained = run.get("net_state_dict") if isinstance(run, dict) else None
                    if isinstance(trained, dict) and trained:
                        if weights:
                            stored.add(str(dataset), str(hp), index, int(seed), trained,
                                       f"{source.path} arch {index} [{hp}][{dataset}, {seed}]")
                        else:  # a pickle's tensors were skipped unread (counted there); a .pth's were loaded
                            dropped += sum(v is not None and not isinstance(v, SkippedWeights) for v in trained.values())
                        run["net_state_dict"] = None  # each run's tensors freed once stored
            converter.add(index, source.meta_archs[index], by_hp, f"{source.path} arch {index}")
        meta = {"space": space, "source": source.layout}
        converter.finish(tables, meta)
        weight_runs = stored.finish(tables)
        budgets = sorted(pl.read_parquet(tables / "archs.parquet", columns=["hp"])["hp"].unique().to_list(), key=int)
        protocols = {hp: {"epochs": epochs_of(hp), "protocol": Protocol.nats(hp).as_dict()}
                     for hp in budgets if hp in NATS_BUDGETS}
        write_checked(tables / PROTOCOLS, (json.dumps(protocols, indent=2, sort_keys=True) + "\n").encode())
        provenance = {"layout": source.layout, "path": source.path.name, "files": source.files,
                      "weights_skipped": SkippedWeights.count + dropped, "weights_runs": weight_runs,
                      "eval_sets": {d: sorted(n) for d, n in sorted(converter.eval_names.items())},
                      "eval_order": dict(sorted(converter.eval_order.items()))}
        (tables / SOURCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        archs = pl.read_parquet(tables / "archs.parquet")
        figures(archs, staging / "figures")
        metrics = headline(archs)
        (staging / "figures" / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        found = audit(tables, space, staging / "validation", settings)
        (staging / MEASURED).mkdir()
        (staging / MEASURED / MANIFEST).write_text(json.dumps(
            {"note": "an import measures nothing: NATS-Bench's recorded times are in tables/", "hosts": [], "files": {}},
            indent=2, sort_keys=True) + "\n")
        for record in staging.rglob(f"*{CHECKSUM_SUFFIX}"):
            record.unlink()
        name = out.name
        (staging / "DATACARD.md").write_text(import_datacard(name, space, provenance, archs, metrics, found, protocols))
        from nasforge.release import _describe

        manifest = {"name": name, "version": version, "space": space, "nasforge": nasforge.__version__,
                    "code_version": code_version(), "source": provenance, "audit": {
                        k: v["archs"] for k, v in found["findings"].items()},
                    "measured": f"{MEASURED}/{MANIFEST}",
                    "files": _describe(staging, {MANIFEST, f"{MEASURED}/{MANIFEST}"})}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        check_out(Path(source_path), out)  # again: what lies at out may have changed while this import ran
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(lock)
    return {"release": str(out), "archs": archs["arch_index"].n_unique(), "rows": archs.height,
            "weights_skipped": provenance["weights_skipped"], "weights_runs": provenance["weights_runs"],
            "findings": {k: v["archs"] for k, v in found["findings"].items()}}


__all__ = ["AuditSettings", "import_release"]
