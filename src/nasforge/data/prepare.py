"""The prepare phase: verified raw inputs in, one folder of ready arrays out.

``results/data/{dataset}/`` holds ``{split}_images.npy`` (uint8 N,C,H,W),
``{split}_labels.npy`` (int64), ``splits.parquet`` (where every image came
from) and ``manifest.json`` (normalisation, class counts, sha256 of each file,
MD5 of each source). Everything is written into a hidden sibling folder and
swapped in only when complete, so a failure never leaves a half-written
dataset and never damages one prepared earlier.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from nasforge.data.registry import DatasetSpec, get_dataset, select
from nasforge.data.sources import CHECKSUMS, SOURCES, SourceError
from nasforge.errors import MissingInputError
from nasforge.files import replace_dir, sha256

MANIFEST = "manifest.json"


def read_manifest(path: Path | str) -> dict:
    """A prepared dataset's manifest.json; ``path`` is its folder or the manifest itself."""
    file = Path(path) if Path(path).name == MANIFEST else Path(path) / MANIFEST
    if not file.is_file():
        raise MissingInputError(f"{file}: no prepared dataset here; run `nasforge prepare DATASET` first")
    return json.loads(file.read_text())


def prepare(dataset: str, out_root: Path | str, source: Path | str | None = None,
            checksums: Mapping[str, str] = CHECKSUMS) -> Path:
    """Prepare ``dataset`` under ``out_root/dataset`` and return that folder.

    ``source`` is the official archive or folder; ``mnist5k`` needs none.
    ``checksums`` exists for tests that fabricate archives; users keep the default.
    """
    spec = get_dataset(dataset)
    if source is None and spec.source != "mnist5k":
        raise SourceError(f"{dataset} needs its official source: pass --source PATH (see `nasforge prepare --help`)")
    raw, source_md5 = SOURCES[spec.source](Path(source) if source else None, checksums)

    out = Path(out_root) / dataset
    staging = out.parent / f".{dataset}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _write(spec, raw, source_md5, staging)
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write(spec: DatasetSpec, raw: dict, source_md5: dict[str, str], folder: Path) -> None:
    rows, split_info = [], {}
    for split, (source_split, selector) in spec.splits.items():
        images, labels = raw[source_split]
        index = select(selector, labels)
        if index.size and index.max() >= len(labels):
            raise SourceError(
                f"{spec.name}: the {split} split needs index {int(index.max())} but the {source_split} source "
                f"holds only {len(labels)} images; the source is not the official dataset"
            )
        x, y = np.ascontiguousarray(images[index]), labels[index]
        if y.size and (y.min() < 0 or y.max() >= spec.num_classes):
            raise SourceError(f"{spec.name}: labels outside 0..{spec.num_classes - 1} in the {split} split")
        if x.shape[1:] != (spec.channels, spec.size, spec.size):
            raise SourceError(f"{spec.name}: {split} images are {x.shape[1:]}, expected {(spec.channels, spec.size, spec.size)}")
        np.save(folder / f"{split}_images.npy", x)
        np.save(folder / f"{split}_labels.npy", y.astype(np.int64))
        rows.append(pl.DataFrame({
            "split": [split] * len(index),
            "position": np.arange(len(index), dtype=np.int64),
            "source_split": [source_split] * len(index),
            "source_index": index,
            "label": y.astype(np.int64),
        }))
        split_info[split] = {
            "count": len(y),
            "class_counts": np.bincount(y, minlength=spec.num_classes).astype(int).tolist(),
        }
    pl.concat(rows).sort("split", "position").write_parquet(folder / "splits.parquet", statistics=False)
    manifest = {
        "dataset": spec.name,
        "num_classes": spec.num_classes,
        "shape": [spec.channels, spec.size, spec.size],
        "mean": list(spec.mean),
        "std": list(spec.std),
        "crop_padding": spec.crop_padding,
        "hflip": spec.hflip,
        "eval_splits": list(spec.eval_splits),
        "valtest": spec.valtest,
        "splits": split_info,
        "source_md5": dict(sorted(source_md5.items())),
        "files": {p.name: sha256(p) for p in sorted(folder.iterdir())},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
