"""NATS-Bench's per-arch result objects, rebuilt from a release's tables.

``ArchRecord`` answers as nats_bench 1.8's ``ArchResults`` does and ``RunRecord``
as its ``ResultsCount``: the same methods, the same keys, the same arithmetic
(a mean is ``sum(values) / len(values)`` over seeds in ascending order, a
random trial is drawn with the same calls to ``random``), so a NATS-style
script gets the same numbers from a nasforge release as from NATS-Bench's own
files. They are built per (arch, budget) from the release's rows on the first
query (the release is the data; these are views of it). They hold no
trained weights: ``get_net_param`` reads them from the release's ``weights/``
when it has them, and gives ``None`` otherwise, as NATS-Bench's "simple" files do.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Sequence

NATS_DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")


def nats_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def nb201_cost(values: Sequence[float], seeds: Sequence[int]) -> float:
    """NAS-Bench-201's params or FLOPs of an arch: the mean over seeds (``np.mean``; for a handful of values
    its sum runs in order, as this one's)."""
    return nats_mean(values)


def nats_cost(values: Sequence[float], seeds: Sequence[int], lenient: bool = False) -> float:
    """NATS-Bench's params or FLOPs of an arch: the mean over seeds, except where the seeds' values
    differ in the 5th decimal (a known defect of its files): then seed 888's value."""
    if len(values) > 1 and len({f"{v:.5f}" for v in values}) > 1:
        if 888 in seeds:
            values = [values[list(seeds).index(888)]]
        elif not lenient:
            raise ValueError(f"seeds {list(seeds)} disagree on a cost and hold no seed 888 to settle it (NATS-Bench's rule)")
    return nats_mean(values)


class MissingRecord(KeyError, ValueError):
    """An epoch or set a run did not record: nats_bench raises ValueError here, NAS-Bench-201 the KeyError of
    its dict look-up, so code written for either catches it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunRecord:
    """One trained network (NATS-Bench's ``ResultsCount``)."""

    #: how ``get_times`` sums per-epoch seconds: in order, as nats_bench; NAS-Bench-201 uses ``np.mean`` and
    #: ``np.sum``, whose pairwise sums differ in the last bits over 200 epochs
    time_mean = staticmethod(nats_mean)
    time_sum = staticmethod(sum)

    def __init__(self, name: str, seed: int, epochs: int, params: float, flop: float, latency: list[float] | None,
                 arch_config: dict) -> None:
        self.name, self.seed, self.epochs = name, seed, epochs
        self.params, self.flop, self.latency = params, flop, latency
        self.arch_config = arch_config
        self.net_state_dict = None
        self.weights = None  # a loader of the trained state dict, where the release holds one
        self.train_acc1es: dict[int, float] = {}
        self.train_acc5es = None
        self.train_losses: dict[int, float] = {}
        self.train_times: dict[int, float] | None = None
        self.eval_names: list[str] = []
        self.eval_acc1es: dict[str, float] = {}
        self.eval_losses: dict[str, float] = {}
        self.eval_times: dict[str, float] = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name}, arch={self.arch_config.get('arch_str', self.arch_config.get('channels'))}, "
                f"FLOP={self.flop:.2f}M, Param={self.params:.3f}MB, seed={self.seed}, {len(self.eval_names)} eval-sets: "
                f"[{', '.join(self.eval_names)}])")

    def get_total_epoch(self) -> int:
        return self.epochs

    def get_eval_set(self) -> list[str]:
        return list(self.eval_names)

    def get_latency(self) -> float:
        """Seconds; -1 where none was recorded (NATS-Bench's convention)."""
        return -1.0 if self.latency is None else sum(self.latency) / len(self.latency)

    def get_net_param(self, clone: bool = False):
        """The trained state dict where the release holds it (read from its file on each call), else None."""
        return None if self.weights is None else self.weights()

    def get_config(self, str2structure=None) -> dict:
        config = copy.deepcopy(self.arch_config)
        if str2structure is not None:
            key = "genotype" if config["name"] == "infer.shape.tiny" else "arch_str"
            config["genotype"] = str2structure(config.pop(key) if key == "arch_str" else config[key])
        return config

    def _check(self, iepoch: int | None) -> int:
        iepoch = self.epochs - 1 if iepoch is None else iepoch
        if iepoch < 0 or iepoch >= self.epochs:
            raise ValueError(f"invalid iepoch={iepoch} < {self.epochs}")
        return iepoch

    def get_train(self, iepoch: int | None = None) -> dict:
        iepoch = self._check(iepoch)
        if self.train_times is not None:
            now, total = self.train_times[iepoch], sum(self.train_times[i] for i in range(iepoch + 1))
        else:
            now, total = None, None
        return {"iepoch": iepoch, "loss": self.train_losses[iepoch], "accuracy": self.train_acc1es[iepoch],
                "cur_time": now, "all_time": total}

    def get_eval(self, name: str, iepoch: int | None = None) -> dict:
        iepoch = self._check(iepoch)
        name = "x-valid" if name == "valid" else name
        if self.eval_times:
            key = f"{name}@{iepoch}"
            if key not in self.eval_times:
                raise MissingRecord(f"{key} not in {self.eval_times.keys()}")
            now, total = self.eval_times[key], sum(self.eval_times[f"{name}@{i}"] for i in range(iepoch + 1))
        else:
            now, total = None, None
        return {"iepoch": iepoch, "loss": self.eval_losses[f"{name}@{iepoch}"],
                "accuracy": self.eval_acc1es[f"{name}@{iepoch}"], "cur_time": now, "all_time": total}

    def get_times(self) -> dict[str, float | None]:
        """Per-epoch mean and total seconds of training and of each eval set (None where not recorded)."""
        if self.train_times is not None:
            values = list(self.train_times.values())
            info = {"T-train@epoch": self.time_mean(values), "T-train@total": self.time_sum(values)}
        else:
            info = {"T-train@epoch": None, "T-train@total": None}
        for name in self.eval_names:
            keys = [f"{name}@{i}" for i in range(self.epochs)]
            if all(k in self.eval_times for k in keys):
                values = [self.eval_times[k] for k in keys]
                info[f"T-{name}@epoch"], info[f"T-{name}@total"] = self.time_mean(values), self.time_sum(values)
            else:
                info[f"T-{name}@epoch"], info[f"T-{name}@total"] = None, None
        return info


class ArchRecord:
    """One arch under one budget, every dataset and seed (NATS-Bench's ``ArchResults``)."""

    #: params and FLOPs over seeds: nats_bench 1.8's rule; NAS-Bench-201's API takes the plain mean
    cost = staticmethod(nats_cost)

    def __init__(self, arch_index: int, arch_str: str) -> None:
        self.arch_index, self.arch_str = arch_index, arch_str
        self.all_results: dict[tuple[str, int], RunRecord] = {}
        self.dataset_seed: dict[str, list[int]] = {}
        self.clear_net_done = False

    def add(self, run: RunRecord) -> None:
        self.dataset_seed.setdefault(run.name, []).append(run.seed)
        self.dataset_seed[run.name].sort()
        self.all_results[(run.name, run.seed)] = run

    def __repr__(self) -> str:
        return (f"ArchResults(arch-index={self.arch_index}, arch={self.arch_str}, {len(self.all_results)} runs, "
                f"clear={self.clear_net_done})")

    def arch_idx_str(self) -> str:
        return f"{self.arch_index:06d}"

    def get_dataset_names(self) -> list[str]:
        return list(self.dataset_seed)

    def get_dataset_seeds(self, dataset: str) -> list[int]:
        return list(self.dataset_seed[dataset])

    def _runs(self, dataset: str) -> list[RunRecord]:
        return [self.all_results[(dataset, s)] for s in self.dataset_seed[dataset]]

    def get_compute_costs(self, dataset: str) -> dict[str, float | None]:
        seeds, runs = self.dataset_seed[dataset], self._runs(dataset)
        latencies = [x for x in (r.get_latency() for r in runs) if x > 0]
        info = {"flops": self.cost([r.flop for r in runs], seeds), "params": self.cost([r.params for r in runs], seeds),
                "latency": nats_mean(latencies) if latencies else None}
        times: dict[str, list] = {}
        for run in runs:
            for key, value in run.get_times().items():
                times.setdefault(key, []).append(value)
        for key, values in times.items():
            info[key] = nats_mean(values) if values and values[0] is not None else None
        return info

    def get_metrics(self, dataset: str, setname: str, iepoch: int | None = None, is_random: bool | int = False) -> dict:
        """Loss, accuracy and times on ``setname`` ("train", "x-valid", "x-test", "ori-test"):
        is_random True a random trial, False the mean over trials, an int that seed's trial."""
        seeds, runs = self.dataset_seed[dataset], self._runs(dataset)
        infos: dict[str, list] = {}
        for run in runs:
            info = run.get_train(iepoch) if setname == "train" else run.get_eval(setname, iepoch)
            for key, value in info.items():
                infos.setdefault(key, []).append(value)
        if isinstance(is_random, bool) and is_random:
            pick = random.randint(0, len(runs) - 1)
            return {key: values[pick] for key, values in infos.items()}
        if isinstance(is_random, bool):
            return {key: nats_mean(values) if values and values[0] is not None else None for key, values in infos.items()}
        if isinstance(is_random, int):
            if is_random not in seeds:
                raise ValueError(f"can not find random seed ({is_random}) from {seeds}")
            pick = seeds.index(is_random)
            return {key: values[pick] for key, values in infos.items()}
        raise ValueError(f"invalid value for is_random: {is_random}")

    def get_latency(self, dataset: str) -> float:
        latencies = []
        for seed in self.dataset_seed[dataset]:
            latency = self.all_results[(dataset, seed)].get_latency()
            if not isinstance(latency, float) or latency <= 0:
                raise ValueError(f"invalid latency of {dataset} with seed={seed} : {latency}")
            latencies.append(latency)
        return sum(latencies) / len(latencies)

    def get_total_epoch(self, dataset: str | None = None) -> int:
        datasets: Iterable[str] = self.dataset_seed if dataset is None else [dataset]
        epochs = [self.all_results[(d, s)].epochs for d in datasets for s in self.dataset_seed[d]]
        if len(set(epochs)) > 1:
            raise ValueError(f"Each trial mush have the same number of training epochs : {epochs}")
        return epochs[-1]

    def query(self, dataset: str, seed: int | None = None):
        if seed is None:
            return {s: self.all_results[(dataset, s)] for s in self.dataset_seed[dataset]}
        return self.all_results[(dataset, seed)]

    def get_net_param(self, dataset: str, seed: int | None = None):
        """The trained weights of one trial (a seed) or of all ({seed: state dict}); None where the release
        holds metrics only (as NATS-Bench's "simple" files)."""
        if seed is None:
            return {s: self.all_results[(dataset, s)].get_net_param() for s in self.dataset_seed[dataset]}
        if (dataset, seed) not in self.all_results:
            raise ValueError(f"key={(dataset, seed)} not in {list(self.all_results)}")
        return self.all_results[(dataset, seed)].get_net_param()

    def clear_params(self) -> None:
        self.clear_net_done = True


def eval_sets(dataset: str) -> dict[str, str]:
    """NATS-Bench's eval set names of a dataset and the nasforge split each is stored as: ``x-valid``
    is valid; where the dataset's test images are split in two (cifar100, ImageNet16-120) ``x-test`` is
    test and ``ori-test`` (both halves) valtest, otherwise ``ori-test`` is test."""
    from nasforge.data.registry import DATASETS

    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is not one nasforge knows ({sorted(DATASETS)})")
    if DATASETS[dataset].valtest:
        return {"x-valid": "valid", "x-test": "test", "ori-test": "valtest"}
    return {"x-valid": "valid", "ori-test": "test"}


def arch_record(index: int, arch: str, epochs, times, costs, config, eval_order: dict | None = None) -> ArchRecord:
    """An ``ArchRecord`` from one arch's rows under one budget (``Benchmark.runs``); ``config(dataset)``
    gives the arch's network config on a dataset (NATS-Bench's ``arch_config``); ``eval_order``, per dataset,
    the order an imported source listed its eval sets in (its collection code took them from a set)."""
    record = ArchRecord(index, arch)
    time_of = {(d, s, e): row for d, s, e, *row in times.select(
        "dataset", "seed", "epoch", "train_seconds", "valid_seconds", "test_seconds", "valtest_seconds").iter_rows()}
    columns = ["dataset", "seed", "epoch", "train_loss", "train_acc"] + [
        f"{s}_{m}" for s in ("valid", "test", "valtest") for m in ("loss", "acc")]
    runs: dict[tuple[str, int], list[tuple]] = {}
    for row in epochs.select(columns).sort("dataset", "seed", "epoch").iter_rows():
        runs.setdefault((row[0], row[1]), []).append(row)
    order = {d: k for k, d in enumerate(NATS_DATASETS)}  # NATS-Bench's order of datasets, then the others by name
    rows = sorted(costs.select("dataset", "seed", "epochs", "params", "flops", "latency").iter_rows(),
                  key=lambda r: (order.get(r[0], len(order)), r[0], r[1]))
    for dataset, seed, n_epochs, params, flops, latency in rows:
        run = RunRecord(dataset, seed, n_epochs, params, flops, latency, config(dataset))
        names = {split: name for name, split in eval_sets(dataset).items()}
        train_times: dict[int, float] = {}
        for _d, _s, e, train_loss, train_acc, *evals in runs.get((dataset, seed), []):
            if train_loss is not None:
                run.train_losses[e] = train_loss
            if train_acc is not None:
                run.train_acc1es[e] = train_acc
            seconds = time_of.get((dataset, seed, e), (None,) * 4)
            if seconds[0] is not None:
                train_times[e] = seconds[0]
            for k, split in enumerate(("valid", "test", "valtest")):
                loss, acc = evals[2 * k], evals[2 * k + 1]
                if acc is None and loss is None:
                    continue
                name = names[split]
                if name not in run.eval_names:
                    run.eval_names.append(name)
                key = f"{name}@{e}"
                if loss is not None:
                    run.eval_losses[key] = loss
                if acc is not None:
                    run.eval_acc1es[key] = acc
                if seconds[k + 1] is not None:
                    run.eval_times[key] = seconds[k + 1]
        run.train_times = train_times or None
        if eval_order and dataset in eval_order:
            order = eval_order[dataset]
            run.eval_names.sort(key=lambda name, order=order: order.index(name) if name in order else len(order))
        record.add(run)
    return record
