"""Tiny datasets in the official on-disk formats, so the loaders run on real layouts."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from torchvision.datasets.utils import calculate_md5

from nasforge.data import registry


def _batch(rng: np.random.Generator, n: int, side: int, label_key: str, classes: int, low: int = 0) -> dict:
    return {
        "data": rng.integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8),
        label_key: rng.integers(low, low + classes, size=n).tolist(),
    }


def _pickle(obj: dict) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _tar(path: Path, folder: str, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime = len(payload), 0
            tar.addfile(info, io.BytesIO(payload))


def cifar10(root: Path, per_batch: int = 10, test: int = 10, seed: int = 0) -> tuple[tuple[Path, dict[str, str]], dict]:
    """cifar-10-python.tar.gz with 5 training batches: ((archive, checksums), raw batches)."""
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _batch(rng, per_batch, 32, "labels", 10) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, test, 32, "labels", 10)
    files = {name: _pickle(b) for name, b in batches.items()}
    files["batches.meta"] = _pickle({"label_names": [f"c{i}" for i in range(10)]})
    return _archive(root, "cifar-10-python.tar.gz", "cifar-10-batches-py", files), batches


def cifar100(root: Path, train: int = 40, test: int = 20, seed: int = 1) -> tuple[tuple[Path, dict[str, str]], dict]:
    rng = np.random.default_rng(seed)
    batches = {"train": _batch(rng, train, 32, "fine_labels", 100), "test": _batch(rng, test, 32, "fine_labels", 100)}
    files = {name: _pickle(b) for name, b in batches.items()}
    files["meta"] = _pickle({"fine_label_names": [f"c{i}" for i in range(100)]})
    return _archive(root, "cifar-100-python.tar.gz", "cifar-100-python", files), batches


def _archive(root: Path, archive: str, folder: str, files: dict[str, bytes]) -> tuple[Path, dict[str, str]]:
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive
    _tar(path, folder, files)
    extracted = root / "extracted" / folder
    extracted.mkdir(parents=True, exist_ok=True)
    checksums = {archive: calculate_md5(str(path))}
    for name, payload in files.items():
        (extracted / name).write_bytes(payload)
        checksums[f"{folder}/{name}"] = calculate_md5(str(extracted / name))
    return path, checksums


def imagenet16(root: Path, per_batch: int = 12, val: int = 30, seed: int = 2) -> tuple[Path, dict[str, str], dict]:
    """NATS-Bench's ImageNet16 pickles: labels 1..1000, of which 1..120 are kept."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    batches = {f"train_data_batch_{i}": _batch(rng, per_batch, 16, "labels", 240, low=1) for i in range(1, 11)}
    batches["val_data"] = _batch(rng, val, 16, "labels", 240, low=1)
    checksums = {}
    for name, b in batches.items():
        (root / name).write_bytes(_pickle(b))
        checksums[name] = calculate_md5(str(root / name))
    return root, checksums, batches


def shrink_nats_splits(monkeypatch, limits: dict[str, int]) -> None:
    """Restrict NATS-Bench's split files to the indices a tiny source holds (the real lists, truncated)."""
    real = registry.nats_split_indices

    def small(file: str, key: str) -> np.ndarray:
        full = real(file, key)
        return full[full < limits[file]]

    monkeypatch.setattr(registry, "nats_split_indices", small)


def mnist_slice(full: Path, out: Path, per_class: dict[str, int]) -> Path:
    """A class-balanced slice of a prepared mnist5k (real digits), in the prepared format."""
    import json

    from nasforge.data.prepare import MANIFEST
    from nasforge.files import sha256

    folder = out / "mnist5k"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((full / MANIFEST).read_text())
    for split, k in per_class.items():
        labels = np.load(full / f"{split}_labels.npy")
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(10)]))
        np.save(folder / f"{split}_images.npy", np.load(full / f"{split}_images.npy")[keep])
        np.save(folder / f"{split}_labels.npy", labels[keep])
        manifest["splits"][split] = {"count": len(keep), "class_counts": [k] * 10}
    manifest["files"] = {p.name: sha256(p) for p in sorted(folder.glob("*.npy"))}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


def shard_tables(results: Path, params: dict) -> None:
    """Shard tables in the trainer's schemas for every planned arch, with plausible
    made-up numbers (deterministic), so later phases can be tested without training."""
    import polars as pl

    from nasforge.models.cost import cost
    from nasforge.paths import Results
    from nasforge.plan import make_plan
    from nasforge.protocol import Protocol
    from nasforge.schema import COST_KEYS, COST_SCHEMA, PLAN_KEYS, SHARD_KEYS, SHARD_SCHEMA, TIMING_SCHEMA
    from nasforge.tables import write_table

    space, plan, r = params["space"], params["plan"], Results(str(results))
    table = make_plan(space, plan["archs"], plan["shards"], plan["sample_seed"], plan["include"])
    write_table(table, r.plan(space), PLAN_KEYS)
    rng = np.random.default_rng(0)
    for dataset in params["datasets"]:
        spec = registry.get_dataset(dataset)
        for hp in params["train"]["budgets"]:
            for seed in params["train"]["seeds"]:
                for k in range(plan["shards"]):
                    metrics, timing, costs = [], [], []
                    for index, arch in table.filter(pl.col("shard") == k).select("arch_index", "arch").iter_rows():
                        none_cell = set(arch.replace("|", " ").replace("+", " ").split()) <= {f"none~{i}" for i in range(3)}
                        quality = 10.0 if none_cell else 50 + 40 * (index % 7) / 7
                        for epoch in range(int(hp)):
                            acc = float(quality if none_cell else quality * (epoch + 1) / int(hp) + rng.normal(0, 0.5))
                            row = {"space": space, "arch_index": index, "arch": arch, "dataset": dataset, "hp": hp,
                                   "seed": seed, "epoch": epoch, "lr": 0.1, "train_loss": 1.0, "train_acc": acc,
                                   "valid_loss": 1.1, "valid_acc": acc, "test_loss": 1.1, "test_acc": acc,
                                   "diverged": False}
                            metrics.append(row)
                            timing.append({k2: row[k2] for k2 in ("space", "arch_index", "dataset", "hp", "seed", "epoch")}
                                          | {"train_seconds": 1.0 + rng.random(), "eval_seconds": 0.1})
                        c = cost(space, arch, spec.num_classes, spec.size, spec.channels)
                        costs.append({"space": space, "arch_index": index, "arch": arch, "dataset": dataset,
                                      "seed": seed, "params": c["params"], "flops": c["flops"],
                                      "latency_bs1_ms": 1.0, "latency_bs256_ms": 9.0 + rng.random()})
                    protocol = Protocol.nats(hp).with_overrides(params["train"]["protocol"]).as_dict()
                    meta = {"environment": {"device": "fabricated"},
                            "job": {"hp": hp, "epochs": int(hp), "protocol": protocol, "seed": seed, "shard": k}}
                    write_table(pl.DataFrame(metrics, schema=SHARD_SCHEMA), r.shard(space, dataset, hp, seed, k),
                                SHARD_KEYS, meta)
                    write_table(pl.DataFrame(timing, schema=TIMING_SCHEMA), r.shard(space, dataset, hp, seed, k, "timing"),
                                SHARD_KEYS)
                    write_table(pl.DataFrame(costs, schema=COST_SCHEMA), r.shard(space, dataset, hp, seed, k, "cost"),
                                COST_KEYS)
