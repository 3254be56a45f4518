"""Tiny NATS-Bench / NAS-Bench-201 sources, made the way their own pipelines made theirs.

Every record goes through the collection path that wrote the published files:
xautodl 1.0.0 builds the network (``get_cell_based_tiny_net``) and counts its
FLOPs and params (``get_model_infos``: params a ``numpy.float64``); the oracle's
own ``ResultsCount`` / ``ArchResults`` hold the run exactly as
``exps/NATS-Bench/tss-collect.py`` / ``sss-collect.py`` (NATS files, nats_bench
1.8) and NB-201's collection (``.pth`` files, nas_201_api 2.1) call them; and
the files are written by ``nats_bench.pickle_save`` (bz2, protocol 4) under
numpy 1.x's global names (``numpy.core.multiarray.scalar``, as in the 2020-21
files) or by ``torch.save``. Only the learning curves are invented (nobody can
train 15,625 networks in a test).

The value types the collection code stores, and where each lands here:
- ``numpy.float64``: params (``get_model_infos``), and latency in TSS files
  (``reset_latency`` of NB-201's ``get_latency``, an ``np.mean``);
- Python ``float``: accuracies, losses, times (xautodl's ``AverageMeter``), FLOPs;
- Python ``int`` seeds in ``dataset_seed``, ``str`` seeds in each ``ResultsCount``
  (``used_seed`` is cut from a file name and never converted);
- None (``train_acc5es`` of old records, ``net_state_dict`` in simple files),
  ``OrderedDict`` (pseudo train times, ``{hp: state}``), torch tensors (full files);
- and, as other numpy reductions would have stored them: ``numpy.float32``
  (arch 3's train losses), ``numpy.int64`` (arch 25's epochs), ``numpy.bool_``
  (``clear_net_done``).

Quirks, as in the real files:
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
import contextlib
import pickle
import random
from functools import cache
from pathlib import Path

import numpy as np

from nasforge.spaces import get_space
from nasforge.spaces.sss import FIXED_CELL

ARCHS = (0, 3, 9, 25, 1651)
ISOMORPHIC = (3, 25)
ALL_NONE = 1651
NO_999 = 9
LEGACY_FLOPS = 0
F32_LOSSES, I64_EPOCHS = 3, 25
SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
        "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
SHAPES = {"cifar10-valid": (3, 32, 32), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "ImageNet16-120": (3, 16, 16)}
HPS = {"12": {"cifar10-valid": [111, 777], "cifar10": [111], "cifar100": [111], "ImageNet16-120": [111]},
       "200": {d: [777, 888, 999] for d in SETS}}
#: NATS-Bench's size space: hp 01 and 90, seed 777 (and 888 on cifar100 at 90 here, for a mean)
SSS_ARCHS = (0, 1, 32767)
SSS_HPS = {"01": {d: [777] for d in SETS}, "90": {d: [777, 888] if d == "cifar100" else [777] for d in SETS}}
#: archs whose "full" files carry trained weights in the tests (the lightest networks: fast to save)
WEIGHT_ARCHS = (9, 1651)
EVAL_IMAGES = 64


def _oracle(kind: str):
    """nats_bench's or nas_201_api's module of ``ResultsCount``/``ArchResults``."""
    if kind == "nb201":
        from nas_201_api import api_utils
    else:
        from nats_bench import api_utils
    return api_utils


def net_config(space: str, arch: str, classes: int) -> dict:
    """The config ``get_net_config`` answers and xautodl builds from."""
    if space == "tss":
        return {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": arch, "num_classes": classes}
    return {"name": "infer.shape.tiny", "channels": arch, "genotype": FIXED_CELL, "num_classes": classes}


def network(space: str, arch: str, classes: int, seed: int | None = None):
    """xautodl's own network for ``arch`` (seeded as NATS-Bench's ``prepare_seed`` does, when given)."""
    import torch
    from xautodl.models import get_cell_based_tiny_net

    if seed is not None:
        torch.manual_seed(seed)
    return get_cell_based_tiny_net(net_config(space, arch, classes))


@cache
def model_infos(space: str, arch: str, dataset: str) -> tuple[float, np.float64]:
    """(FLOPs, params) as xautodl's ``get_model_infos`` counts them: params a ``numpy.float64``."""
    from xautodl.utils import get_model_infos

    flop, param = get_model_infos(network(space, arch, CLASSES[dataset]), (1, *SHAPES[dataset]))
    assert isinstance(param, np.float64)  # what the published files hold
    return flop, param


@cache
def eval_data(dataset: str):
    """Fabricated images and labels in the dataset's shape: the recorded accuracy of a run with weights is
    its network's accuracy on these, as the collection measured it on the real test set."""
    import torch

    g = torch.Generator().manual_seed(len(dataset))
    return torch.randn(EVAL_IMAGES, *SHAPES[dataset], generator=g), torch.randint(
        0, CLASSES[dataset], (EVAL_IMAGES,), generator=g)


def accuracy(net, dataset: str) -> float:
    """Top-1 in percent, as xautodl's ``pure_evaluate`` reports it (eval mode, the second output's argmax)."""
    import torch

    images, labels = eval_data(dataset)
    net.eval()
    with torch.no_grad():
        _, logits = net(images)
    return (logits.argmax(1) == labels).float().sum().item() * 100.0 / len(labels)


def _curves(index: int, dataset: str, hp: str, seed: int, epochs: int) -> dict:
    """Invented learning curves with the types xautodl's procedures record (AverageMeter averages: floats)."""
    rng = random.Random(f"{index}-{dataset}-{hp}-{seed}")
    quality = 0.0 if index == ALL_NONE else (0.6 if index == 25 else 1.0)
    ceiling = 100.0 / CLASSES[dataset] + quality * (90.0 - 100.0 / CLASSES[dataset])
    out = {"train_acc1es": {}, "train_acc5es": {}, "train_losses": {}, "train_times": {},
           "valid_acc1es": {}, "valid_losses": {}, "valid_times": {}}
    for e in range(epochs):
        progress = (e + 1) / epochs
        out["train_acc1es"][e] = min(100.0, ceiling * progress + rng.uniform(0, 3))
        out["train_acc5es"][e] = min(100.0, ceiling * progress + 5)
        loss = 2.5 * (1 - progress) + rng.uniform(0, 0.1)
        out["train_losses"][e] = np.float32(loss) if index == F32_LOSSES else loss
        out["train_times"][e] = rng.uniform(5, 6)
        halves = []
        for name in SETS[dataset]:
            if name == "ori-test" and len(halves) == 2:
                acc = sum(halves) / 2  # ori-test is the union of x-valid and x-test, equal halves
            else:
                acc = max(0.0, ceiling * progress - rng.uniform(0, 4))
                halves.append(acc)
            out["valid_acc1es"][f"{name}@{e}"] = acc
            out["valid_losses"][f"{name}@{e}"] = 2.6 * (1 - progress) + rng.uniform(0, 0.2)
            out["valid_times"][f"{name}@{e}"] = rng.uniform(1, 2)
    return out


def result_count(kind: str, space: str, index: int, dataset: str, hp: str, seed: int, weights: bool = False,
                 old: bool = False):
    """One run as the collection scripts build it: ``ResultsCount(dataset, net_state_dict, ..., param, flop,
    arch_config, used_seed, total_epoch, None)``, then its train and eval records.

    ``old``: NAS-Bench-201 v1.0's records (``update_OLD_eval``: x-valid every epoch on cifar10-valid, the test
    sets at the last epoch only, no times, latency measured per run)."""
    api = _oracle(kind)
    arch = get_space(space).arch(index)
    epochs = int(hp)
    flop, param = model_infos(space, arch, dataset)
    if index == LEGACY_FLOPS:
        flop += {777: 0.0, 888: 0.00002, 999: 0.00004}.get(seed, 0.0)
    state = None
    curves = _curves(index, dataset, hp, seed, epochs)
    if weights:
        net = network(space, arch, CLASSES[dataset], seed)
        state = net.state_dict()
        curves["valid_acc1es"][f"ori-test@{epochs - 1}"] = accuracy(net, dataset)
    if space == "tss":
        arch_config = {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": CLASSES[dataset]}
    else:
        arch_config = {"name": "infer.shape.tiny", "channels": arch, "arch_str": arch, "genotype": FIXED_CELL,
                       "class_num": CLASSES[dataset]}
    total_epoch = np.int64(epochs) if index == I64_EPOCHS else epochs
    run = api.ResultsCount(dataset, state, curves["train_acc1es"], curves["train_losses"], param, flop,
                           arch_config, str(seed), total_epoch, None)
    if old:
        last = epochs - 1
        for name in SETS[dataset]:
            every = name == "x-valid" or (dataset != "cifar10-valid" and name == "ori-test")
            run.update_OLD_eval(name, {e: curves["valid_acc1es"][f"{name}@{e}"] for e in range(epochs)
                                       if every or e == last},
                                {e: curves["valid_losses"][f"{name}@{e}"] for e in range(epochs) if every or e == last})
        run.update_latency([0.012 + index / 1e6 + seed / 1e9, 0.013 + index / 1e6])
        return run
    run.update_train_info(curves["train_acc1es"], curves["train_acc5es"], curves["train_losses"],
                          curves["train_times"])
    run.update_eval(curves["valid_acc1es"], curves["valid_losses"], curves["valid_times"])
    return run


def arch_results(kind: str, space: str, index: int, weights: bool = False, old: bool = False) -> dict:
    """``{hp: ArchResults}`` of one arch, its times and latency reset to one value per dataset as
    ``correct_time_related_info`` does (skipped for NB-201 v1.0, which has neither)."""
    api = _oracle(kind)
    arch = get_space(space).arch(index)
    out = collections.OrderedDict()
    for hp, datasets in (HPS if space == "tss" else SSS_HPS).items():
        info = api.ArchResults(index, arch)
        for dataset, seeds in datasets.items():
            for seed in seeds:
                if not (index == NO_999 and seed == 999):
                    info.update(dataset, seed, result_count(kind, space, index, dataset, hp, seed, weights, old))
        out[hp] = info
    if old:
        return out
    latency = np.mean([0.012 + index / 1e6, 0.0121 + index / 1e6])  # NB-201's get_latency: an np.mean
    per_epoch = 10.0 + index % 7
    for info in out.values():
        for dataset in info.get_dataset_names():
            info.reset_latency(dataset, None, latency)
            info.reset_pseudo_train_times(dataset, None, per_epoch * (2 if dataset == "ImageNet16-120" else 1))
            for name in SETS[dataset]:
                info.reset_pseudo_eval_times(dataset, None, name, per_epoch / 5)
    return out


def arch_states(index: int, space: str = "tss", weights: bool = False) -> dict[str, dict]:
    """``{hp: ArchResults.state_dict()}`` of one arch (nats_bench's classes); without weights, as the
    simple files: ``clear_params`` first, as tss-collect.py does."""
    out = collections.OrderedDict()
    for hp, info in arch_results("nats", space, index, weights).items():
        if not weights:
            info.clear_params()
        state = info.state_dict()
        state["clear_net_done"] = np.bool_(state["clear_net_done"])
        out[hp] = state
    return out


def save_numpy1(obj, path: Path) -> Path:
    """``nats_bench.pickle_save(obj, path)`` under numpy 1.x's global names: numpy 2 pickles its scalars as
    ``numpy._core.multiarray.scalar``, the 2020-21 files say ``numpy.core.multiarray.scalar``."""
    from nats_bench import api_utils

    with _numpy1_names(api_utils.pickle):
        api_utils.pickle_save(obj, str(path), ext="")
    return path


class _Numpy1Pickler(pickle._Pickler):
    """The pure-Python pickler, naming numpy's scalar rebuilder as numpy 1.x did."""

    def save_global(self, obj, name=None):
        if obj is np._core.multiarray.scalar:
            self.save("numpy.core.multiarray")
            self.save("scalar")
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


@contextlib.contextmanager
def _numpy1_names(module):
    """Make ``module.dump`` (pickle_save's ``pickle.dump``) pickle with numpy 1.x names."""
    original = module.dump

    def dump(obj, file, protocol=None, **kwargs):
        _Numpy1Pickler(file, protocol, **kwargs).dump(obj)

    module.dump = dump
    try:
        yield
    finally:
        module.dump = original


def simple_folder(root: Path, archs=ARCHS, space: str = "tss", weights: bool = False) -> Path:
    """NATS-{space}-v1_0-*-simple/ (or -full/ with ``weights``): meta.pickle.pbz2 plus one
    {index:06d}.pickle.pbz2 per arch."""
    kind = "full" if weights else "simple"
    folder = root / (f"NATS-tss-v1_0-3ffb9-{kind}" if space == "tss" else f"NATS-sss-v1_0-50262-{kind}")
    folder.mkdir(parents=True)
    meta = {"meta_archs": list(get_space(space)), "total_archs": len(get_space(space)), "arch2infos": None,
            "evaluated_indexes": set()}
    save_numpy1(meta, folder / "meta.pickle.pbz2")
    for index in archs:
        save_numpy1(arch_states(index, space, weights), folder / f"{index:06d}.pickle.pbz2")
    return folder


def single_file(root: Path, archs=ARCHS) -> Path:
    """NATS-tss-v1_0-3ffb9.pickle.pbz2: meta_archs, arch2infos and evaluated_indexes in one pickle."""
    root.mkdir(parents=True, exist_ok=True)
    data = {"meta_archs": list(get_space("tss")), "total_archs": 15625,
            "arch2infos": {i: arch_states(i) for i in archs}, "evaluated_indexes": set(archs)}
    return save_numpy1(data, root / "NATS-tss-v1_0-3ffb9.pickle.pbz2")


def nb201_file(root: Path, archs=ARCHS, version: str = "1_1", weights: bool = False) -> Path:
    """NAS-Bench-201-v1_0-e61699.pth or v1_1-096897.pth: ``torch.save`` of the dict, each arch's results
    (nas_201_api's classes) under "less" (12 epochs) and "full" (200); v1.0 holds NB-201's old records."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    infos = {}
    for i in archs:
        results = arch_results("nb201", "tss", i, weights, old=version == "1_0")
        if not weights:
            for info in results.values():
                info.clear_params()
        infos[i] = {"less": results["12"].state_dict(), "full": results["200"].state_dict()}
    name = {"1_0": "NAS-Bench-201-v1_0-e61699.pth", "1_1": "NAS-Bench-201-v1_1-096897.pth"}[version]
    path = root / name
    torch.save({"meta_archs": list(get_space("tss")), "arch2infos": infos, "evaluated_indexes": sorted(archs)}, path)
    return path


class Hostile:
    """A pickle that runs a command when loaded by the default unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _dump(obj, path: Path) -> Path:
    with bz2.BZ2File(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def hostile_folder(root: Path, marker: Path) -> Path:
    """A simple folder whose first arch file would run ``touch marker`` if unpickled naively."""
    folder = simple_folder(root, archs=(0,))
    _dump({"12": {"all_results": {}, "dataset_seed": {}, "payload": Hostile(marker)}}, folder / "000000.pickle.pbz2")
    return folder
