"""What changed between two releases: files, archs and their metrics, protocol and params.

Two versions of a benchmark (say, before and after a protocol fix) differ in
some numbers of some archs; a reader needs those archs, by how much, and
which tables and figures moved, not a byte diff. Files are compared by
their manifest sha256 (both releases are opened as ``Benchmark.open`` does,
trusting nothing), archs by joining ``archs.parquet`` on (dataset, hp, arch).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nasforge.release.manifest import ReleaseError, verify
from nasforge.schema import ARCH_KEYS

COMPARED = ["train_acc_mean", "valid_acc_mean", "test_acc_mean", "valtest_acc_mean", "params", "flops", "n_seeds"]


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _changed(a, b) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return False
    return a != b


def diff_releases(a: Path | str, b: Path | str) -> dict:
    """Everything that differs from release ``a`` to release ``b``."""
    from nasforge.api import Benchmark

    for release in (a, b):  # a change is a change between two releases as released, never a tampered file
        problems = verify(release)
        if problems:
            raise ReleaseError(f"{release}: does not verify ({problems[0]}); diff compares intact releases only")
    old, new = Benchmark.open(a), Benchmark.open(b)
    files_a, files_b = old.manifest["files"], new.manifest["files"]
    files = {
        "added": sorted(files_b.keys() - files_a.keys()),
        "removed": sorted(files_a.keys() - files_b.keys()),
        "changed": sorted(k for k in files_a.keys() & files_b.keys() if files_a[k]["sha256"] != files_b[k]["sha256"]),
    }
    columns = [c for c in COMPARED if c in old.archs.columns and c in new.archs.columns]
    archs_a, archs_b = old.archs.select(ARCH_KEYS), new.archs.select(ARCH_KEYS)
    removed = archs_a.join(archs_b, on=ARCH_KEYS, how="anti").sort(ARCH_KEYS)
    added = archs_b.join(archs_a, on=ARCH_KEYS, how="anti").sort(ARCH_KEYS)
    both = old.archs.select(*ARCH_KEYS, *columns).join(new.archs.select(*ARCH_KEYS, *columns), on=ARCH_KEYS,
                                                      how="inner", suffix="_new").sort(ARCH_KEYS)
    changed_rows, metrics = [], {}
    for row in both.iter_rows(named=True):
        deltas = {c: (row[c], row[f"{c}_new"]) for c in columns if _changed(row[c], row[f"{c}_new"])}
        if deltas:
            changed_rows.append({**{k: row[k] for k in ARCH_KEYS},
                                 "changed": {c: {"from": x, "to": y} for c, (x, y) in deltas.items()}})
            for c, (x, y) in deltas.items():
                m = metrics.setdefault(c, {"archs": 0, "max_abs_delta": 0.0, "sum_delta": 0.0, "finite": 0})
                m["archs"] += 1
                if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
                    m["max_abs_delta"] = max(m["max_abs_delta"], abs(y - x))
                    m["sum_delta"] += y - x
                    m["finite"] += 1
    summary_metrics = {c: {"archs": m["archs"], "max_abs_delta": m["max_abs_delta"],
                           "mean_delta": m["sum_delta"] / m["finite"] if m["finite"] else None}
                       for c, m in sorted(metrics.items())}
    protocols = {}
    for side, bench in (("a", old), ("b", new)):
        path = Path(bench.root) / "tables" / "protocols.json"
        protocols[side] = _flatten(json.loads(path.read_text())) if path.is_file() else {}
    params = {side: _flatten(bench.manifest.get("params", {})) for side, bench in (("a", old), ("b", new))}

    def changes(pair: dict[str, dict]) -> dict[str, dict]:
        keys = sorted(pair["a"].keys() | pair["b"].keys())
        return {k: {"from": pair["a"].get(k), "to": pair["b"].get(k)} for k in keys if pair["a"].get(k) != pair["b"].get(k)}

    return {
        "a": {"release": str(a), "name": old.manifest.get("name"), "version": old.manifest.get("version")},
        "b": {"release": str(b), "name": new.manifest.get("name"), "version": new.manifest.get("version")},
        "files": files,
        "archs": {"added": added.rows(), "removed": removed.rows(), "changed": changed_rows,
                  "compared": both.height},
        "metrics": summary_metrics,
        "protocol": changes(protocols),
        "params": changes(params),
    }


def describe(d: dict, limit: int = 20) -> str:
    """The diff as a few readable lines (the JSON has everything)."""
    lines = [f"{d['a']['name']} -> {d['b']['name']}"]
    f = d["files"]
    for kind in ("changed", "added", "removed"):
        if f[kind]:
            lines.append(f"files {kind} ({len(f[kind])}): " + ", ".join(f[kind][:limit])
                         + (" ..." if len(f[kind]) > limit else ""))
    if not any(f.values()):
        lines.append("files: identical")
    for key in ("protocol", "params"):
        for k, v in d[key].items():
            lines.append(f"{key} {k}: {v['from']!r} -> {v['to']!r}")
    a = d["archs"]
    lines.append(f"archs: {len(a['changed'])} changed of {a['compared']} held by both, {len(a['added'])} added, "
                 f"{len(a['removed'])} removed")
    for c, m in d["metrics"].items():
        mean = "n/a" if m["mean_delta"] is None else f"{m['mean_delta']:+.4g}"
        lines.append(f"  {c}: {m['archs']} archs, max |delta| {m['max_abs_delta']:.4g}, mean delta {mean}")
    for row in a["changed"][:limit]:
        what = ", ".join(f"{c} {v['from']} -> {v['to']}" for c, v in row["changed"].items())
        lines.append(f"  {row['dataset']} hp{row['hp']} arch {row['arch_index']}: {what}")
    if len(a["changed"]) > limit:
        lines.append(f"  ... {len(a['changed']) - limit} more (--json lists every one)")
    return "\n".join(lines)
