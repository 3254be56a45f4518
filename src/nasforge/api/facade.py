"""NATS-Bench's API on a nasforge release: ``create(release_dir, "tss")``.

Code written against ``nats_bench.create(...)`` runs on a nasforge release,
built or imported, unchanged: ``NATStopology`` and ``NATSsize`` have every
public method and attribute of nats_bench 1.8's classes, with its signatures,
keys and arithmetic (``api/records.py``), and the tests check each answer
against nats_bench itself on the same data. Deliberate differences (README,
fidelity table):

- A release opens lazily whatever ``fast_mode`` says, and keeps at most
  ``RECORD_CACHE`` archs' result objects (NATS-Bench keeps every one it ever
  loaded: the 28 GB of its non-fast mode). ``evaluated_indexes`` is every
  arch the release holds from the start, not only those queried so far.
- A release may hold a sample of the space. ``len(api)`` and ``meta_archs``
  are the whole space, as NATS-Bench's; querying an arch the release does not
  hold raises ``QueryError`` (a ValueError) naming what it holds.
- ``verbose`` prints no call traces; ``hp`` also accepts 1/"1" for "01".
- Datasets: any the release holds (a build may hold nasforge's ``mnist5k``);
  ``simulate_train_eval`` on ``cifar10`` answers from ``cifar10-valid``, as NATS-Bench does.
- A built release's times are its measured seconds; it measured one
  evaluation pass per epoch over all splits, which stands for each split's
  ``*-per-time``. Its latency is the measured batch-256 latency in seconds.
- ``get_net_param`` reads a run's weights from the release's ``weights/`` on
  each call (a release imported with ``--weights`` or built with
  ``train.save_weights``), and gives ``None`` where it holds metrics only, as
  NATS-Bench's "simple" files; ``show(-1)`` prints a summary instead of every arch.
"""

from __future__ import annotations

import copy
import math
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from nasforge.api.benchmark import Benchmark, QueryError
from nasforge.api.records import NATS_DATASETS, ArchRecord, arch_record, eval_sets, nats_mean, nb201_cost
from nasforge.errors import InputError
from nasforge.schema import budget_name
from nasforge.spaces import get_space

RECORD_CACHE = 512  # archs' result objects kept; one arch of a full NATS-Bench budget is about 1 MB of them
_COMMENTS = {
    "cifar10-valid": "In this dict, train-loss/accuracy/time is the metric on the train set of CIFAR-10. The "
                     "test-loss/accuracy/time is the performance of the CIFAR-10 test set after training on the train "
                     "set by {:} epochs. The per-time and total-time indicate the per epoch and total time costs, "
                     "respectively.",
    "cifar10": "In this dict, train-loss/accuracy/time is the metric on the train+valid sets of CIFAR-10. The "
               "test-loss/accuracy/time is the performance of the CIFAR-10 test set after training on the train+valid "
               "sets by {:} epochs. The per-time and total-time indicate the per epoch and total time costs, "
               "respectively.",
}


def _hp(hp) -> str:
    return budget_name(hp)


def _remap(dataset: str, metric_on_set: str) -> tuple[str, str]:
    """NATS-Bench's short set names to its internal ones (``remap_dataset_set_names``); other datasets
    read "test" as their test split's name."""
    if dataset == "cifar10" and metric_on_set == "valid":
        return "cifar10-valid", "x-valid"
    if dataset == "cifar10" and metric_on_set == "test":
        return "cifar10", "ori-test"
    if dataset in ("cifar100", "ImageNet16-120") and metric_on_set in ("valid", "test"):
        return dataset, f"x-{metric_on_set}"
    if dataset not in NATS_DATASETS and metric_on_set == "test":
        return dataset, next(n for n, s in eval_sets(dataset).items() if s == "test")
    return dataset, metric_on_set


class _Records(Mapping):
    """``arch2infos_dict``: index -> {hp: ArchRecord}, built from the release on first use and kept
    for the ``RECORD_CACHE`` most recently used archs."""

    def __init__(self, api: NATSFacade) -> None:
        self._api = api
        self._cache: OrderedDict[int, dict[str, ArchRecord]] = OrderedDict()

    def __getitem__(self, index: int) -> dict[str, ArchRecord]:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        bench = self._api._bench
        if index not in bench._held:
            raise KeyError(index)
        records = OrderedDict()
        space, arch = self._api._space, self._api.meta_archs[index]
        for hp in bench.budgets:
            if any((d, hp, index) in bench._rows for d in bench.datasets):
                epochs, times, costs = bench.runs(index, hp)
                records[hp] = arch_record(index, arch, epochs, times, costs, lambda d: space.net_config(
                    arch, _classes(d)), bench.manifest.get("source", {}).get("eval_order"))
                for (dataset, seed), run in records[hp].all_results.items():
                    if bench.has_weights(dataset, hp, index, seed):
                        run.weights = partial(bench.weights, dataset, hp, index, seed)
        self._cache[index] = records
        if len(self._cache) > RECORD_CACHE:
            self._cache.popitem(last=False)
        return records

    def __iter__(self) -> Iterator[int]:
        return iter(self._api._bench.indices)

    def __len__(self) -> int:
        return len(self._api._bench.indices)

    def drop(self, index: int | None = None) -> None:
        if index is None:
            self._cache.clear()
        else:
            self._cache.pop(index, None)


def _classes(dataset: str) -> int:
    from nasforge.data.registry import get_dataset

    return get_dataset(dataset).num_classes


class NATSFacade:
    """What NATStopology and NATSsize share (nats_bench's ``NASBenchMetaAPI``)."""

    _search_space_name = ""
    _full_train_epochs = 0
    _separator = " & "  # between loss and top1 in printed summaries

    def __init__(self, bench: Benchmark, file_path: str | Path | None = None, fast_mode: bool = False,
                 verbose: bool = True) -> None:
        self._bench = bench
        self._space = get_space(bench.space)
        self.meta_archs: list[str] = list(self._space)
        self.archstr2index = {arch: i for i, arch in enumerate(self.meta_archs)}
        self.evaluated_indexes = set(bench.indices)
        self.arch2infos_dict = _Records(self)
        self.filename = Path(file_path or bench.root).name
        self.verbose = verbose
        self._fast_mode = fast_mode
        self._archive_dir = str(bench.root)
        self._avaliable_hps = set(bench.budgets)
        self._used_time = 0

    # --- the space ----------------------------------------------------------------
    def __getitem__(self, index: int) -> str:
        return self.meta_archs[index]

    def __len__(self) -> int:
        return len(self.meta_archs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.evaluated_indexes)}/{len(self.meta_archs)} architectures, "
                f"fast_mode={self.fast_mode}, file={self.filename})")

    def arch(self, index: int) -> str:
        if index < 0 or index >= len(self.meta_archs):
            raise ValueError(f"invalid index : {index} vs. {len(self.meta_archs)}.")
        return self.meta_archs[index]

    def random(self) -> int:
        """A random index of the whole space (``random.randint``, as NATS-Bench draws it)."""
        return random.randint(0, len(self.meta_archs) - 1)

    def query_index_by_arch(self, arch) -> int:
        """The index of an index (checked), an arch string or an object with ``tostr()``; -1 if unknown."""
        if isinstance(arch, int):
            if 0 <= arch < len(self):
                return arch
            raise ValueError(f"Invalid architecture index {arch} vs [0, {len(self)}].")
        if isinstance(arch, str):
            return self.archstr2index.get(arch, -1)
        if hasattr(arch, "tostr"):
            return self.archstr2index.get(arch.tostr(), -1)
        return -1

    # --- attributes ---------------------------------------------------------------
    @property
    def avaliable_hps(self) -> list[str]:
        return list(self._avaliable_hps)

    @property
    def used_time(self) -> float:
        return self._used_time

    @property
    def search_space_name(self) -> str:
        return self._search_space_name

    @property
    def fast_mode(self) -> bool:
        return self._fast_mode

    @property
    def archive_dir(self) -> str:
        return self._archive_dir

    @property
    def full_train_epochs(self) -> int:
        return self._full_train_epochs

    @property
    def full_epochs_in_paper(self) -> int:
        return self._full_train_epochs

    @property
    def is_topology(self) -> bool:
        return self._space.name == "tss"

    @property
    def is_size(self) -> bool:
        return self._space.name == "sss"

    def reset_archive_dir(self, archive_dir: str) -> None:
        self._archive_dir = archive_dir

    def reset_fast_mode(self, fast_mode: bool) -> None:
        self._fast_mode = fast_mode

    def reset_time(self) -> None:
        self._used_time = 0

    # --- result objects -------------------------------------------------------------
    def _record(self, arch, hp) -> ArchRecord:
        index = self.query_index_by_arch(arch)
        if index < 0:
            raise QueryError(f"{arch!r} is not an arch of the {self._space.name} space")
        if index not in self.evaluated_indexes:
            raise QueryError(f"arch {index} is in the {self._space.name} space but not in this release, which holds "
                             f"{len(self.evaluated_indexes)} archs")
        records = self.arch2infos_dict[index]
        hp = _hp(hp)
        if hp not in records:
            raise QueryError(f"The {index}-th architecture only has hyper-parameters of {list(records)} instead of {hp}.")
        return records[hp]

    def query_meta_info_by_index(self, arch_index: int, hp: str = "12") -> ArchRecord:
        """A copy of the arch's results under ``hp`` (NATS-Bench's ``ArchResults``)."""
        return copy.deepcopy(self._record(arch_index, hp))

    def query_by_index(self, arch_index: int, dataname: str | None = None, hp: str = "12"):
        """The arch's results, or with ``dataname`` its trials on that dataset keyed by seed."""
        info = self.query_meta_info_by_index(arch_index, hp)
        if dataname is None:
            return info
        if dataname not in info.get_dataset_names():
            raise QueryError(f"invalid dataset-name : {dataname} vs. {info.get_dataset_names()}")
        return info.query(dataname)

    def query_info_str_by_arch(self, arch, hp: str = "12") -> str:
        index = self.query_index_by_arch(arch)
        return "\n".join(_describe(self._record(index, hp), f"arch-index={index}", self.is_size, self._separator))

    def query_by_arch(self, arch, hp: str = "12") -> str:
        return self.query_info_str_by_arch(arch, hp)

    def clear_params(self, index: int, hp: str | None = None) -> None:
        """Forget the arch's cached result objects (a release holds no weights to free)."""
        self.arch2infos_dict.drop(index)

    def reload(self, archive_root: str | None = None, index: int | None = None) -> None:
        """Result objects are rebuilt from the release on demand: this forgets the cached ones."""
        if index is not None and not 0 <= index < len(self.meta_archs):
            raise ValueError(f"invalid index of {index}")
        self.arch2infos_dict.drop(index)

    # --- metrics --------------------------------------------------------------------
    def get_more_info(self, index, dataset: str, iepoch: int | None = None, hp: str = "12",
                      is_random: bool | int = True) -> dict:
        """NATS-Bench's dict of ``{train,valid,test,valtest}-{loss,accuracy,per-time,all-time}`` (and
        its ``comment`` on cifar10): is_random True a random trial, False the mean over trials, an int
        that seed's trial; iepoch the 0-based epoch (default the last)."""
        record = self._record(index, hp)
        if dataset not in record.dataset_seed:
            raise QueryError(f"dataset {dataset!r} is not trained for this arch and budget; it has "
                             f"{record.get_dataset_names()}")
        if isinstance(is_random, bool) and is_random:
            is_random = random.choice(record.get_dataset_seeds(dataset))
        train = record.get_metrics(dataset, "train", iepoch=iepoch, is_random=is_random)
        total = train["iepoch"] + 1
        info = {"train-loss": train["loss"], "train-accuracy": train["accuracy"],
                "train-per-time": None if train["all_time"] is None else train["all_time"] / total,
                "train-all-time": train["all_time"]}

        def metrics(setname: str, required: bool = False) -> dict | None:
            try:
                return record.get_metrics(dataset, setname, iepoch=iepoch, is_random=is_random)
            except (KeyError, ValueError):
                if required:
                    raise
                return None

        sets = eval_sets(dataset)
        if dataset == "cifar10-valid":
            valid, test, valtest = metrics("x-valid", required=True), metrics("ori-test"), None
            info["comment"] = _COMMENTS[dataset].format(hp)
        else:
            if dataset == "cifar10":
                info["comment"] = _COMMENTS[dataset].format(hp)
            test_name = "ori-test" if sets.get("ori-test") == "test" else "x-test"
            test, valid = metrics(test_name), metrics("x-valid")
            valtest = metrics("ori-test") if test_name != "ori-test" else None
        for prefix, values in (("valid", valid), ("test", test), ("valtest", valtest)):
            if values is not None:
                info.update({f"{prefix}-loss": values["loss"], f"{prefix}-accuracy": values["accuracy"],
                             f"{prefix}-per-time": None if values["all_time"] is None else values["all_time"] / total,
                             f"{prefix}-all-time": values["all_time"]})
        return info

    def get_cost_info(self, index, dataset: str, hp: str = "12") -> dict[str, float | None]:
        """``flops``, ``params`` (millions), ``latency`` (seconds) and NATS-Bench's time keys
        (``T-train@epoch``, ``T-train@total``, ``T-{eval set}@epoch``/``@total``)."""
        record = self._record(index, hp)
        if dataset not in record.dataset_seed:
            raise QueryError(f"dataset {dataset!r} is not trained for this arch; it has {record.get_dataset_names()}")
        return record.get_compute_costs(dataset)

    def get_latency(self, index, dataset: str, hp: str = "12") -> float | None:
        return self.get_cost_info(index, dataset, hp)["latency"]

    def simulate_train_eval(self, arch, dataset: str, iepoch: int | None = None, hp: str = "12",
                            account_time: bool = True) -> tuple[float, float | None, float, float]:
        """Pretend to train ``arch``: (validation accuracy, latency, time cost, total time used), a random
        trial, ``cifar10`` answered from ``cifar10-valid``; the cost accumulates in ``used_time``."""
        index = self.query_index_by_arch(arch)
        source = "cifar10-valid" if dataset == "cifar10" else dataset
        info = self.get_more_info(index, source, iepoch=iepoch, hp=hp, is_random=True)
        if "valid-accuracy" in info:
            valid_acc, time_cost = info["valid-accuracy"], info["train-all-time"] + info["valid-per-time"]
        else:
            valid_acc = info["valtest-accuracy"]
            full = self.get_more_info(index, dataset, iepoch=None, hp=hp, is_random=True)
            time_cost = info["train-all-time"] + full["valid-per-time"]
        latency = self.get_latency(index, dataset, hp=hp)
        if account_time:
            self._used_time += time_cost
        return valid_acc, latency, time_cost, self._used_time

    def find_best(self, dataset: str, metric_on_set: str, flop_max: float | None = None,
                  param_max: float | None = None, hp: str = "12", enforce_all: bool | None = None, *,
                  FLOP_max: float | None = None, Param_max: float | None = None) -> tuple[int, float | None]:
        """(index, mean accuracy) of the best held arch on ``metric_on_set`` ("train", "valid", "test",
        "x-valid", "x-test", "ori-test") within the FLOPs and params limits (millions); (-1, None) if none.
        ``FLOP_max``/``Param_max`` are NAS-Bench-201's names for the limits."""
        flop_max = FLOP_max if flop_max is None else flop_max
        param_max = Param_max if param_max is None else param_max
        dataset, setname = _remap(dataset, metric_on_set)
        bench, hp = self._bench, _hp(hp)
        if dataset not in bench.datasets or hp not in bench.budgets:
            raise QueryError(f"{dataset} hp{hp} is not in this release: it holds {bench.datasets}, budgets {bench.budgets}")
        if setname == "train":
            split = "train"
        else:
            split = {"x-valid": "valid", "valid": "valid", **eval_sets(dataset)}.get(setname)
        c = bench._columns
        best, highest = -1, None
        for index in bench.indices:
            row = bench._rows.get((dataset, hp, index))
            if row is None:
                continue
            if (flop_max is not None and c["flops"][row] > flop_max) or (param_max is not None and c["params"][row] > param_max):
                continue  # as NATS-Bench: the costs are checked first, the set only for archs within them
            if split is None:
                raise QueryError(f"metric_on_set {metric_on_set!r}: {dataset} has train and {list(eval_sets(dataset))}")
            values = c[f"{split}_acc_seeds"][row]
            if not len(values) or any(v is None for v in values):
                raise QueryError(f"arch {index} has no {setname} result on {dataset} hp{hp} for every seed "
                                 "(NATS-Bench raises here too)")
            accuracy = nats_mean([float(v) for v in values])
            if not math.isfinite(accuracy):
                continue  # a diverged arch (NaN) never wins; in NATS-Bench a NaN first arch would stay best
            if best == -1 or highest < accuracy:
                best, highest = index, accuracy
        return best, highest

    def statistics(self, dataset: str, hp: str | int) -> dict[int, int]:
        """{number of trials: number of archs with that many on ``dataset``} under budget ``hp``."""
        bench, hp = self._bench, _hp(hp)
        counts: dict[int, int] = {}
        for index in bench.indices:
            if not any((d, hp, index) in bench._rows for d in bench.datasets):
                continue
            row = bench._rows.get((dataset, hp, index))
            n = 0 if row is None else int(bench._columns["n_seeds"][row])
            counts[n] = counts.get(n, 0) + 1
        return counts

    def get_net_config(self, index: int, dataset: str) -> dict:
        """The config NATS-Bench's ``get_cell_based_tiny_net`` builds from (nasforge: ``build_network``)."""
        index = self.query_index_by_arch(index)
        if index not in self.evaluated_indexes:
            raise QueryError(f"The arch_index={index} is not in this release.")
        return self._space.net_config(self.meta_archs[index], _classes(dataset))

    def get_net_param(self, index, dataset: str, seed: int | None, hp: str = "12"):
        """The trained state dict of seed ``seed`` (or {seed: state dict} for None), read from the release's
        ``weights/`` when asked, as nats_bench's full files give it; None where the release holds metrics only."""
        return self._record(index, hp).get_net_param(dataset, seed)

    def show(self, index: int = -1) -> None:
        if index < 0:
            print(self)
            b = self._bench
            print(f"datasets {b.datasets}, budgets {b.budgets}, seeds {b.seeds}")
            return
        if not 0 <= index < len(self.meta_archs):
            print(f"This index ({index}) is out of range (0~{len(self.meta_archs)}).")
            return
        if index not in self.evaluated_indexes:
            print(f"The {index}-th architecture has not been evaluated or not saved.")
            return
        for record in self.arch2infos_dict[index].values():
            print(">" * 40 + f" {record.get_total_epoch():03d} epochs " + ">" * 40)
            print("\n".join(_describe(record, test_on_valid=self.is_size, separator=self._separator)))
        print("<" * 40 + "------------" + "<" * 40)


class NATStopology(NATSFacade):
    """nats_bench's ``NATStopology`` on a release of the topology space."""

    _search_space_name = "topology"
    _full_train_epochs = 200

    def get_unique_str(self, arch) -> str:
        """The string shared by isomorphic cells (NATS-Bench's ``to_unique_str(consider_zero=True)``)."""
        from nasforge.spaces.tss import isomorphism_key, parse_arch

        return isomorphism_key(parse_arch(self.meta_archs[self.query_index_by_arch(arch)]))

    @staticmethod
    def str2lists(arch_str: str) -> list[tuple[tuple[str, int], ...]]:
        """Per node, its (op, input node) pairs."""
        nodes = []
        for node in arch_str.split("+"):
            edges = [e for e in node.split("|") if e != ""]
            for edge in edges:
                if len(edge.split("~")) != 2:
                    raise ValueError(f"invalid input length : {edge}")
            nodes.append(tuple((op, int(i)) for op, i in (e.split("~") for e in edges)))
        return nodes

    @staticmethod
    def str2matrix(arch_str: str, search_space=("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")):
        """NAS-Bench-101's encoding: matrix[to, from] is the op's index in ``search_space``."""
        import numpy as np

        nodes = NATStopology.str2lists(arch_str)
        matrix = np.zeros((len(nodes) + 1, len(nodes) + 1))
        for to, edges in enumerate(nodes, start=1):
            for op, source in edges:
                if op not in search_space:
                    raise ValueError(f"this op ({op}) is not in {search_space}")
                matrix[to, source] = list(search_space).index(op)
        return matrix


class NASBench201API(NATStopology):
    """NAS-Bench-201's API (nas_201_api 2.1's ``NASBench201API``) on an import of an NB-201 ``.pth``: where
    it answers otherwise than nats_bench 1.8, this answers as NB-201 does (README, fidelity table):
    params and FLOPs are the mean over seeds, ``get_more_info`` has no ``comment``, ``simulate_train_eval``
    reads hp 12's latency whatever ``hp`` is asked, ``find_best`` takes ``FLOP_max``/``Param_max`` and
    compares NB-201's per-seed means, summaries print "loss = ..., top1 = ..."."""

    _separator = ", "

    def __init__(self, file_path_or_dict: str | Path, verbose: bool = True, *, bench: Benchmark | None = None) -> None:
        bench = bench or Benchmark.open(file_path_or_dict)
        if bench.space != "tss":
            raise InputError(f"{file_path_or_dict} is a {bench.space} release; NAS-Bench-201 is the topology space")
        super().__init__(bench, file_path_or_dict, False, verbose)
        self.evaluated_indexes = sorted(self.evaluated_indexes)  # NB-201 keeps a sorted list

    def _record(self, arch, hp) -> ArchRecord:
        record = super()._record(arch, hp)
        record.cost = nb201_cost
        for run in record.all_results.values():
            run.time_mean, run.time_sum = np.mean, np.sum
        return record

    def get_more_info(self, index, dataset: str, iepoch: int | None = None, hp: str = "12",
                      is_random: bool | int = True) -> dict:
        info = super().get_more_info(index, dataset, iepoch, hp, is_random)
        info.pop("comment", None)
        return info

    def simulate_train_eval(self, arch, dataset: str, hp: str = "12", account_time: bool = True):
        """As NB-201's: a random trial's validation accuracy and time, and the latency of hp 12 (NB-201 asks
        ``get_latency(index, dataset)`` with its default hp)."""
        if dataset not in ("cifar10", "cifar100", "ImageNet16-120"):
            raise QueryError(f"Invalid dataset name : {dataset} vs ('cifar10', 'cifar100', 'ImageNet16-120')")
        index = self.query_index_by_arch(arch)
        source = "cifar10-valid" if dataset == "cifar10" else dataset
        info = self.get_more_info(index, source, iepoch=None, hp=hp, is_random=True)
        valid_acc, time_cost = info["valid-accuracy"], info["train-all-time"] + info["valid-per-time"]
        latency = self.get_latency(index, dataset)
        if account_time:
            self._used_time += time_cost
        return valid_acc, latency, time_cost, self._used_time

    def find_best(self, dataset: str, metric_on_set: str, FLOP_max: float | None = None,
                  Param_max: float | None = None, hp: str = "12") -> tuple[int, float | None]:
        """NB-201's search over every held arch: costs (means over seeds) first, then the mean accuracy."""
        dataset, setname = _remap(dataset, metric_on_set)
        best, highest = -1, None
        for index in sorted(self.evaluated_indexes):
            record = self._record(index, hp)
            costs = record.get_compute_costs(dataset)
            if (FLOP_max is not None and costs["flops"] > FLOP_max) or (
                    Param_max is not None and costs["params"] > Param_max):
                continue
            accuracy = record.get_metrics(dataset, setname)["accuracy"]
            if best == -1 or highest < accuracy:
                best, highest = index, accuracy
        return best, highest


class NATSsize(NATSFacade):
    """nats_bench's ``NATSsize`` on a release of the size space."""

    _search_space_name = "size"
    _full_train_epochs = 90


def _describe(record: ArchRecord, extra_info=None, test_on_valid: bool = False, separator: str = " & ") -> list[str]:
    """NATS-Bench's printed summary of an arch's results (``print_information``); its size-space
    version also prints the test set of ``cifar10-valid`` (``test_on_valid``); NAS-Bench-201's separates
    loss and top1 with ", " (``separator``)."""
    lines = [record.arch_str, f"datasets : {record.get_dataset_names()}, extra-info : {extra_info}"]

    def metric(info: dict) -> str:
        return f"loss = {info['loss']:.3f}{separator}top1 = {info['accuracy']:.2f}%"

    for dataset in record.get_dataset_names():
        cost = record.get_compute_costs(dataset)
        latency = cost["latency"]
        shown = f"{latency * 1000:.2f}" if latency is not None and latency > 0 else None
        lines.append(f"{dataset:14s} FLOP={cost['flops']:6.2f} M, Params={cost['params']:.3f} MB, latency={shown} ms.")
        train = record.get_metrics(dataset, "train")
        if dataset == "cifar10":
            test = record.get_metrics(dataset, "ori-test")
            lines.append(f"{dataset:14s} train : [{metric(train)}], test  : [{metric(test)}]")
            continue
        sets = eval_sets(dataset)
        valid = record.get_metrics(dataset, "x-valid")
        if dataset == "cifar10-valid" and not test_on_valid:
            lines.append(f"{dataset:14s} train : [{metric(train)}], valid : [{metric(valid)}]")
            continue
        test = record.get_metrics(dataset, "x-test" if "x-test" in sets else "ori-test")
        lines.append(f"{dataset:14s} train : [{metric(train)}], valid : [{metric(valid)}], test : [{metric(test)}]")
    return lines


def create(file_path_or_dict: str | Path, search_space: str, fast_mode: bool = False, verbose: bool = True) -> NATSFacade:
    """nats_bench's ``create``: open a release of ``search_space`` ("tss"/"topology", "sss"/"size")."""
    classes = {"tss": NATStopology, "topology": NATStopology, "sss": NATSsize, "size": NATSsize}
    if not isinstance(search_space, str) or search_space.lower() not in classes:
        raise InputError(f"search space {search_space!r}: expected one of {sorted(classes)}")
    bench = Benchmark.open(file_path_or_dict)
    cls = classes[search_space.lower()]
    expected = "tss" if cls is NATStopology else "sss"
    if bench.space != expected:
        raise InputError(f"{file_path_or_dict} is a {bench.space} release, not {expected}")
    if cls is NATStopology and bench.manifest.get("source", {}).get("layout") == "nb201":
        return NASBench201API(file_path_or_dict, verbose, bench=bench)  # answers as the API of the file's origin
    return cls(bench, file_path_or_dict, fast_mode, verbose)
