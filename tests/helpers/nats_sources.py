"""Tiny NATS-Bench / NAS-Bench-201 sources in their published layouts, with their known quirks.

The state dicts have the fields nats_bench 1.8's ``ArchResults.state_dict()``
and ``ResultsCount.state_dict()`` write, so nats_bench itself can open what
these write (the tests use it as the oracle). Quirks, as in the real files:
- seeds: hp 200 trains 777/888/999, but arch ``NO_999`` lacks 999; hp 12 trains
  111 (and 777 on cifar10-valid);
- arch ``LEGACY_FLOPS`` records FLOPs that differ across seeds in the 5th decimal;
- ``ISOMORPHIC`` = (3, 25) compute the same function, yet 25 scores far lower;
- ``ALL_NONE`` (1651) is the all-``none`` cell: its output ignores the input;
- times are one series copied to every seed, latency one value copied too.
"""

from __future__ import annotations

import bz2
import collections
import pickle
import random
from pathlib import Path

from nasforge.spaces import get_space
from nasforge.spaces.sss import FIXED_CELL

ARCHS = (0, 3, 9, 25, 1651)
ISOMORPHIC = (3, 25)
ALL_NONE = 1651
NO_999 = 9
LEGACY_FLOPS = 0
SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
        "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
HPS = {"12": {"cifar10-valid": [111, 777], "cifar10": [111], "cifar100": [111], "ImageNet16-120": [111]},
       "200": {d: [777, 888, 999] for d in SETS}}
#: NATS-Bench's size space: hp 01 and 90, seed 777 (and 888 on cifar100 at 90 here, for a mean)
SSS_ARCHS = (0, 1, 32767)
SSS_HPS = {"01": {d: [777] for d in SETS}, "90": {d: [777, 888] if d == "cifar100" else [777] for d in SETS}}


def run_state(index: int, arch: str, dataset: str, hp: str, seed: int, space: str = "tss") -> dict:
    """One ``ResultsCount.state_dict()``."""
    rng = random.Random(f"{index}-{dataset}-{hp}-{seed}")
    epochs = int(hp)
    quality = 0.0 if index == ALL_NONE else (0.6 if index == 25 else 1.0)
    ceiling = 100.0 / CLASSES[dataset] + quality * (90.0 - 100.0 / CLASSES[dataset])
    per_epoch = 10.0 + index % 7  # one time series, the same for every seed (scaled, as NATS-Bench's)
    train_acc, train_loss, train_times = collections.OrderedDict(), collections.OrderedDict(), collections.OrderedDict()
    eval_acc, eval_loss, eval_times = {}, {}, {}
    for e in range(epochs):
        progress = (e + 1) / epochs
        train_acc[e] = min(100.0, ceiling * progress + rng.uniform(0, 3))
        train_loss[e] = 2.5 * (1 - progress) + rng.uniform(0, 0.1)
        train_times[e] = per_epoch
        halves = []
        for name in SETS[dataset]:
            if name == "ori-test" and len(halves) == 2:
                acc = sum(halves) / 2  # ori-test is the union of x-valid and x-test, equal halves
            else:
                acc = max(0.0, ceiling * progress - rng.uniform(0, 4))
                halves.append(acc)
            eval_acc[f"{name}@{e}"] = acc
            eval_loss[f"{name}@{e}"] = 2.6 * (1 - progress) + rng.uniform(0, 0.2)
            eval_times[f"{name}@{e}"] = per_epoch / 5
    flops = 80.0 + index / 100
    if index == LEGACY_FLOPS:
        flops += {777: 0.0, 888: 0.00002, 999: 0.00004}.get(seed, 0.0)
    return {
        "name": dataset, "net_state_dict": None, "train_acc1es": train_acc, "train_acc5es": None,
        "train_losses": train_loss, "train_times": train_times,
        "arch_config": {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch,
                        "class_num": CLASSES[dataset]} if space == "tss" else
                       {"name": "infer.shape.tiny", "channels": arch, "genotype": FIXED_CELL, "class_num": CLASSES[dataset]},
        "params": 0.5 + index / 10000, "flop": flops, "seed": seed, "epochs": epochs, "latency": [0.012 + index / 1e6],
        "eval_names": list(SETS[dataset]), "eval_acc1es": eval_acc, "eval_times": eval_times, "eval_losses": eval_loss,
    }


def arch_states(index: int, space: str = "tss") -> dict[str, dict]:
    """``{hp: ArchResults.state_dict()}`` of one arch."""
    arch = get_space(space).arch(index)
    out = {}
    for hp, datasets in (HPS if space == "tss" else SSS_HPS).items():
        all_results, dataset_seed = {}, {}
        for dataset, seeds in datasets.items():
            seeds = [s for s in seeds if not (index == NO_999 and s == 999)]
            dataset_seed[dataset] = seeds
            for seed in seeds:
                all_results[(dataset, seed)] = run_state(index, arch, dataset, hp, seed, space)
        out[hp] = {"arch_index": index, "arch_str": arch, "all_results": all_results, "dataset_seed": dataset_seed,
                   "clear_net_done": False}
    return out


def _dump(obj, path: Path) -> Path:
    with bz2.BZ2File(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def simple_folder(root: Path, archs=ARCHS, space: str = "tss") -> Path:
    """NATS-{space}-v1_0-*-simple/: meta.pickle.pbz2 plus one {index:06d}.pickle.pbz2 per arch."""
    folder = root / ("NATS-tss-v1_0-3ffb9-simple" if space == "tss" else "NATS-sss-v1_0-50262-simple")
    folder.mkdir(parents=True)
    _dump({"meta_archs": list(get_space(space)), "arch2infos": {}, "evaluated_indexes": set()},
          folder / "meta.pickle.pbz2")
    for index in archs:
        _dump(arch_states(index, space), folder / f"{index:06d}.pickle.pbz2")
    return folder


def single_file(root: Path, archs=ARCHS) -> Path:
    """NATS-tss-v1_0-3ffb9.pickle.pbz2: meta_archs, arch2infos and evaluated_indexes in one pickle."""
    root.mkdir(parents=True, exist_ok=True)
    data = {"meta_archs": list(get_space("tss")), "arch2infos": {i: arch_states(i) for i in archs},
            "evaluated_indexes": set(archs)}
    return _dump(data, root / "NATS-tss-v1_0-3ffb9.pickle.pbz2")


def nb201_file(root: Path, archs=ARCHS) -> Path:
    """NAS-Bench-201-v1_0-e61699.pth: torch.save of the dict, results under "less" (12) and "full" (200)."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    infos = {}
    for i in archs:
        states = arch_states(i)
        infos[i] = {"less": states["12"], "full": states["200"]}
    path = root / "NAS-Bench-201-v1_0-e61699.pth"
    torch.save({"meta_archs": list(get_space("tss")), "arch2infos": infos, "evaluated_indexes": sorted(archs)}, path)
    return path


class Hostile:
    """A pickle that runs a command when loaded by the default unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def hostile_folder(root: Path, marker: Path) -> Path:
    """A simple folder whose first arch file would run ``touch marker`` if unpickled naively."""
    folder = simple_folder(root, archs=(0,))
    _dump({"12": {"all_results": {}, "dataset_seed": {}, "payload": Hostile(marker)}}, folder / "000000.pickle.pbz2")
    return folder
