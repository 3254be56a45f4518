"""The release phase: one self-describing, verifiable folder per benchmark version.

``results/release/{name}-{space}-v{version}/``::

    manifest.json        version, params, code version, environments, and the
                         sha256, size (and rows) of every deterministic file
    DATACARD.md          what was trained, how, the results, the caveats
    tables/              epochs.parquet, archs.parquet, plan.parquet, protocols.json (the
                         protocol each budget's shards recorded training under)
    figures/             the analysis figures and metrics.json (with proxy correlations)
    validation/          validation.json, summary.json, Data Docs
    search/              proxies, NAS algorithm trajectories, summary table and figure
    oneshot/             weight-sharing searches: per-epoch results scored on the benchmark, the archs
                         trained for them, summary table and figure (when the build ran any)
    measured/            times.parquet, latency.parquet, arch_times.parquet and their own
                         manifest.json: wall-clock measurements of this build (and the
                         algorithm results, in ``measured/search/``, when the search
                         charged measured seconds: then they vary run to run too)

Everything outside ``measured/`` is byte-identical when the benchmark is
rebuilt from the same inputs on the same machine kind; ``measured/`` is the
documented exception (seconds are never the same twice), which is why its
hashes live in its own manifest. ``verify`` rechecks both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl

import nasforge
from nasforge.errors import InputError, MissingInputError
from nasforge.files import CHECKSUM_SUFFIX, checksum_path, read_checked, replace_dir, sha256
from nasforge.paths import ONESHOT_FILES, PROTOCOLS
from nasforge.release.datacard import datacard
from nasforge.release.manifest import MANIFEST, MEASURED, ReleaseError, verify
from nasforge.tables import read_metadata
from nasforge.weights import WEIGHTS_TABLE, weights_file

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")


def release_name(params: dict) -> str:
    """``{name}-{space}-v{version}``, refused unless it is one plain folder name (it becomes a path)."""
    r = params.get("release") or {}
    name, version, space = r.get("name"), r.get("version"), params.get("space")
    if not (isinstance(name, str) and _NAME.match(name)):
        raise InputError(f"release.name {name!r}: expected lower-case letters, digits and '-' (e.g. nasforge)")
    if not (isinstance(version, str) and _VERSION.match(version)):
        raise InputError(f"release.version {version!r}: expected a semantic version such as 0.2.0")
    if space not in ("tss", "sss"):
        raise InputError(f"space {space!r}: expected 'tss' or 'sss'")
    return f"{name}-{space}-v{version}"


def code_version() -> str:
    """The git commit the code was built from (a fresh clone of one commit gives one answer)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


AGGREGATE_HINT = "rerun the aggregate phase (snakemake phase_aggregate)"
ANALYSIS_HINT = "rerun the analysis phase (snakemake phase_analysis)"
VALIDATE_HINT = "rerun the validate phase (snakemake phase_validate)"
SEARCH_HINT = "rerun the search phase (snakemake phase_search)"
ONESHOT_HINT = "rerun the oneshot phase (snakemake phase_oneshot)"


def _copy_checked(source: Path, target: Path, rewrite_hint: str) -> None:
    """Copy the bytes that match their producer's sha256, and only those."""
    data = read_checked(source, rewrite_hint)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _copy_folder(source: Path, target: Path, subfolder=None, recursive: bool = True) -> None:
    """Every file of a phase's folder but the checksum records (the manifest takes their place);
    a file with a record is copied only if it matches it. ``subfolder(name)`` may send a
    top-level file elsewhere under the release (relative to ``target``'s parent)."""
    for path in sorted(p for p in (source.rglob("*") if recursive else source.iterdir()) if p.is_file()):
        rel = path.relative_to(source)
        if path.name.endswith(CHECKSUM_SUFFIX) or any(part.startswith(".") for part in rel.parts):
            continue
        out = target.parent / subfolder(path.name) / rel if subfolder else target / rel
        if checksum_path(path).is_file():
            _copy_checked(path, out, f"rerun the phase that wrote {source}")
        else:  # reports (validation.json, the Data Docs): read by people, not by a later step
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)


def _describe(folder: Path, skip: set[str]) -> dict[str, dict]:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in skip:
            continue
        entry = {"sha256": sha256(path), "bytes": path.stat().st_size}
        if path.suffix == ".parquet":
            entry["rows"] = pl.scan_parquet(path).select(pl.len()).collect().item()
        files[rel] = entry
    return files


def build_release(params: dict, plan: Path, bench: Path, measured: Path, validation: Path, figures: Path,
                  out_root: Path, search: Path | None = None, oneshot: Path | None = None) -> Path:
    """Assemble the release folder (atomically) and return it."""
    if not (validation / "summary.json").is_file():
        raise MissingInputError(f"{validation / 'summary.json'}: no passing validation; a release needs one")
    name = release_name(params)
    out = out_root / name
    staging = out_root / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for table in ("epochs", "archs"):
            _copy_checked(bench / f"{table}.parquet", staging / "tables" / f"{table}.parquet", AGGREGATE_HINT)
        _copy_checked(plan, staging / "tables" / "plan.parquet", "rerun the plan phase (snakemake phase_plan)")
        _copy_checked(bench / PROTOCOLS, staging / "tables" / PROTOCOLS, AGGREGATE_HINT)
        if params["train"].get("save_weights"):  # each run's trained weights, content-addressed (nasforge.weights)
            _copy_checked(bench / WEIGHTS_TABLE, staging / "tables" / WEIGHTS_TABLE, AGGREGATE_HINT)
            for sha in pl.read_parquet(staging / "tables" / WEIGHTS_TABLE)["sha256"].unique().sort():
                _copy_checked(bench / weights_file(sha), staging / weights_file(sha), AGGREGATE_HINT)
        _copy_folder(figures, staging / "figures")
        _copy_checked(figures / "metrics.json", staging / "figures" / "metrics.json", ANALYSIS_HINT)
        _copy_folder(validation, staging / "validation")
        for table in ("times", "latency", "arch_times"):
            _copy_checked(measured / f"{table}.parquet", staging / MEASURED / f"{table}.parquet", AGGREGATE_HINT)
        search_summary = None
        if search is not None:
            if not (search / "summary.md").is_file():
                raise MissingInputError(f"{search / 'summary.md'}: no search results; run the search phase "
                                        "(snakemake phase_search) before the release")
            # Proxies never depend on time; the algorithm results do when they charged measured seconds.
            measured_search = params.get("search", {}).get("time_model") == "measured"
            _copy_folder(search, staging / "search", lambda name: (  # not runs/: the suite's jobs' pieces
                "search" if name == "proxies.parquet" or not measured_search else f"{MEASURED}/search"), recursive=False)
            search_summary = read_checked(search / "summary.md", SEARCH_HINT).decode()
        oneshot_summary = None
        if oneshot is not None:
            for file in ONESHOT_FILES:
                _copy_checked(oneshot / file, staging / "oneshot" / file, ONESHOT_HINT)
            seconds = oneshot.parent / MEASURED / "oneshot" / "seconds.parquet"
            _copy_checked(seconds, staging / MEASURED / "oneshot_seconds.parquet", ONESHOT_HINT)
            oneshot_summary = (staging / "oneshot" / "summary.md").read_text()
        environments = read_metadata(staging / "tables" / "epochs.parquet").get("environments", [])
        # The CPUs that trained: kept here, not in the manifest, since any x86-64 CPU gives its bytes.
        measured_manifest = {"note": "wall-clock measurements of this build; they differ run to run",
                             "hosts": read_metadata(staging / MEASURED / "times.parquet").get("hosts", []),
                             "files": _describe(staging / MEASURED, set())}
        (staging / MEASURED / MANIFEST).write_text(json.dumps(measured_manifest, indent=2, sort_keys=True) + "\n")
        metrics = json.loads((staging / "figures" / "metrics.json").read_text())
        summary = json.loads(read_checked(validation / "summary.json", VALIDATE_HINT))
        archs = pl.read_parquet(staging / "tables" / "archs.parquet")
        protocols = json.loads((staging / "tables" / PROTOCOLS).read_text())
        (staging / "DATACARD.md").write_text(datacard(name, params, archs, metrics, summary, environments,
                                                      protocols, search_summary, oneshot_summary))
        manifest = {
            "name": name, "version": params["release"]["version"], "space": params["space"],
            "nasforge": nasforge.__version__, "code_version": code_version(), "params": params,
            "environments": environments, "measured": f"{MEASURED}/{MANIFEST}",
            "files": _describe(staging, {MANIFEST} | {f"{MEASURED}/{p.relative_to(staging / MEASURED).as_posix()}"
                                                      for p in (staging / MEASURED).rglob("*") if p.is_file()}),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


__all__ = ["ReleaseError", "build_release", "code_version", "release_name", "verify"]
