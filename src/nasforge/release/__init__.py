"""The release phase: one self-describing, verifiable folder per benchmark version.

``results/release/{name}-{space}-v{version}/``::

    manifest.json        version, params, code version, environments, and the
                         sha256, size (and rows) of every deterministic file
    DATACARD.md          what was trained, how, the results, the caveats
    tables/              epochs.parquet, archs.parquet, plan.parquet
    figures/             the analysis figures and metrics.json (with proxy correlations)
    validation/          validation.json, summary.json, Data Docs
    search/              proxies, NAS algorithm trajectories, summary table and figure
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
import shutil
import subprocess
from pathlib import Path

import polars as pl

import nasforge
from nasforge.files import replace_dir, sha256
from nasforge.release.datacard import datacard
from nasforge.tables import read_metadata

MANIFEST = "manifest.json"
MEASURED = "measured"


def release_name(params: dict) -> str:
    r = params["release"]
    return f"{r['name']}-{params['space']}-v{r['version']}"


def code_version() -> str:
    """The git commit the code was built from (a fresh clone of one commit gives one answer)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
                  out_root: Path, search: Path | None = None) -> Path:
    """Assemble the release folder (atomically) and return it."""
    if not (validation / "summary.json").is_file():
        raise FileNotFoundError(f"{validation / 'summary.json'}: no passing validation; a release needs one")
    name = release_name(params)
    out = out_root / name
    staging = out_root / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "tables").mkdir(parents=True)
        for table in ("epochs", "archs"):
            shutil.copyfile(bench / f"{table}.parquet", staging / "tables" / f"{table}.parquet")
        shutil.copyfile(plan, staging / "tables" / "plan.parquet")
        shutil.copytree(figures, staging / "figures")
        shutil.copytree(validation, staging / "validation")
        (staging / MEASURED).mkdir()
        for table in ("times", "latency", "arch_times"):
            shutil.copyfile(measured / f"{table}.parquet", staging / MEASURED / f"{table}.parquet")
        search_summary = None
        if search is not None:
            if not (search / "summary.md").is_file():
                raise FileNotFoundError(f"{search / 'summary.md'}: no search results; run the search phase "
                                        "(snakemake phase_search) before the release")
            # Proxies never depend on time; the algorithm results do when they charged measured seconds.
            measured_search = params.get("search", {}).get("time_model") == "measured"
            for path in sorted(p for p in search.iterdir() if not p.name.startswith(".")):
                target = staging / "search" if path.name == "proxies.parquet" or not measured_search else \
                    staging / MEASURED / "search"
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / path.name)
            search_summary = (search / "summary.md").read_text()
        environments = read_metadata(bench / "epochs.parquet").get("environments", [])
        # The CPUs that trained: kept here, not in the manifest, since any x86-64 CPU gives its bytes.
        measured_manifest = {"note": "wall-clock measurements of this build; they differ run to run",
                             "hosts": read_metadata(measured / "times.parquet").get("hosts", []),
                             "files": _describe(staging / MEASURED, set())}
        (staging / MEASURED / MANIFEST).write_text(json.dumps(measured_manifest, indent=2, sort_keys=True) + "\n")
        metrics = json.loads((figures / "metrics.json").read_text())
        summary = json.loads((validation / "summary.json").read_text())
        archs = pl.read_parquet(bench / "archs.parquet")
        (staging / "DATACARD.md").write_text(datacard(name, params, archs, metrics, summary, environments,
                                                      search_summary))
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


def verify(folder: Path) -> list[str]:
    """Every problem found: changed, missing or unlisted files, in both manifests. Empty means intact."""
    folder = Path(folder)
    problems = []
    listed: set[str] = set()
    for manifest_rel, base in ((MANIFEST, folder), (f"{MEASURED}/{MANIFEST}", folder / MEASURED)):
        manifest_path = folder / manifest_rel
        if not manifest_path.is_file():
            return [f"{manifest_path}: missing; not a nasforge release (or it lost its manifest)"]
        listed.add(manifest_rel)
        for rel, entry in json.loads(manifest_path.read_text())["files"].items():
            path = base / rel
            listed.add(path.relative_to(folder).as_posix())
            if not path.is_file():
                problems.append(f"{path}: listed in {manifest_rel} but missing")
            elif path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
                problems.append(f"{path}: sha256 differs from {manifest_rel} (changed since release)")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.relative_to(folder).as_posix() not in listed:
            problems.append(f"{path}: not listed in any manifest (added since release)")
    return problems


__all__ = ["build_release", "code_version", "release_name", "verify"]
