"""A NATS-Bench-compatible facade: ``create(release_dir, "tss")``.

Existing NAS code written against ``nats_bench.create(...)`` runs on a
nasforge release unchanged for the calls below; each answers with NATS-Bench's
signature, return shape and keys. Differences, by design:

- Indices are NATS-Bench's. A release may hold a sample of the space:
  ``len(api)`` is how many archs it holds, ``query_index_by_arch`` answers -1
  for an arch it does not hold (as NATS-Bench does for an unknown one), and
  ``meta_archs`` lists the held archs in index order.
- Times are this build's measured seconds (NATS-Bench's are scaled from one
  reference run), so ``simulate_train_eval`` costs what training really took.
- ``hp`` accepts NATS-Bench's budget names ("12", "200", ...) and "01".
- Not answerable, with a clear error instead of a wrong value: trained
  weights (``get_net_param``) and per-epoch times NATS-Bench interpolated.
"""

from __future__ import annotations

import random
from pathlib import Path

from nasforge.api.benchmark import Benchmark, QueryError
from nasforge.errors import InputError
from nasforge.schema import epochs_of
from nasforge.spaces import get_space


class NATSFacade:
    def __init__(self, bench: Benchmark, search_space: str, verbose: bool = False) -> None:
        self._bench = bench
        self._space = get_space(search_space)
        self.verbose = verbose
        self.meta_archs = [self._space.arch(i) for i in bench.indices]
        self._index = {a: i for a, i in zip(self.meta_archs, bench.indices, strict=True)}
        self._used_time = 0.0

    # --- the space --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.meta_archs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)}/{len(self._space)} architectures of {self._space.name}, "
                f"release={self._bench.root})")

    @property
    def search_space_name(self) -> str:
        return self._space.name

    @property
    def used_time(self) -> float:
        """Simulated seconds spent by ``simulate_train_eval`` since the last ``reset_time``."""
        return self._used_time

    def reset_time(self) -> None:
        self._used_time = 0.0

    def arch(self, index: int) -> str:
        """The arch string of a NATS-Bench index held by this release."""
        return self._space.arch(self._bench.index_of(index))

    def query_index_by_arch(self, arch: str | int) -> int:
        """The NATS-Bench index of an arch string (or index), -1 if this release does not hold it."""
        if isinstance(arch, int):
            return arch if arch in self._bench._held else -1
        try:
            canonical = self._space.arch(self._space.index(arch))
        except ValueError:
            return -1
        return self._index.get(canonical, -1)

    def query_by_arch(self, arch: str | int, hp: str = "12") -> str:
        """A printable summary of an arch on every dataset of the release."""
        index = self._resolve(arch)
        lines = [f"arch {index}: {self._space.arch(index)}"]
        for dataset in self._bench.datasets:
            info = self.get_more_info(index, dataset, hp=hp, is_random=False)
            lines.append(f"  {dataset} hp{hp}: " + ", ".join(f"{k}={v:.3f}" for k, v in info.items()
                                                              if v is not None and k.endswith("accuracy")))
        return "\n".join(lines)

    # --- metrics ----------------------------------------------------------------
    def _resolve(self, arch: str | int) -> int:
        index = self.query_index_by_arch(arch)
        if index < 0:
            raise QueryError(f"{arch!r} is not an arch held by this release ({len(self)} of {len(self._space)})")
        return index

    def _seed(self, index: int, dataset: str, hp: str, is_random: bool | int) -> int | None:
        if is_random is True:
            return random.choice(self._bench.trained_seeds(index, dataset, hp))
        if is_random is False:
            return None
        return int(is_random)

    def get_more_info(self, index: int | str, dataset: str, iepoch: int | None = None, hp: str = "12",
                      is_random: bool | int = True) -> dict[str, float | None]:
        """NATS-Bench's dict: ``{train,valid,test,valtest}-{loss,accuracy,per-time,all-time}``.

        ``is_random``: True a random trained seed, False the mean over seeds, an
        int that seed. ``iepoch``: 0-based epoch (default the last). Datasets
        without a validation split (cifar10) carry no ``valid-*`` keys, and only
        cifar100 and ImageNet16-120 carry ``valtest-*`` (their ``ori-test``), as
        in NATS-Bench. Times are this build's measured seconds.
        """
        index = self._resolve(index)
        seed = self._seed(index, dataset, hp, is_random)
        if iepoch is None:
            m = self._bench.final(index, dataset, hp, seed)
            epoch = None
        else:
            rows = self._bench.epochs(index, dataset, hp, seed)
            if not 0 <= iepoch < rows.height:
                raise QueryError(f"iepoch {iepoch} is outside 0..{rows.height - 1} for hp={hp}")
            m = rows.row(iepoch, named=True)
            epoch = iepoch
        cost = self._bench.cost(index, dataset, hp)
        per_train = cost.get("train_seconds_per_epoch")
        per_eval = cost.get("eval_seconds_per_epoch")
        done = (epoch + 1) if epoch is not None else None
        info = {
            "train-loss": m["train_loss"], "train-accuracy": m["train_acc"],
            "train-per-time": per_train,
            "train-all-time": None if per_train is None else per_train * (done or epochs_of(hp)),
        }
        for split in (s for s in ("valid", "test", "valtest") if m.get(f"{s}_acc") is not None):
            info.update({
                f"{split}-loss": m[f"{split}_loss"], f"{split}-accuracy": m[f"{split}_acc"],
                f"{split}-per-time": per_eval,
                f"{split}-all-time": None if per_eval is None else per_eval * (done or epochs_of(hp)),
            })
        return info

    def get_cost_info(self, index: int | str, dataset: str, hp: str = "12") -> dict[str, float | None]:
        """NATS-Bench's cost dict: ``flops`` and ``params`` (millions), ``latency`` (seconds for one
        image, batch 1), ``T-train@epoch``/``@total`` and ``T-ori-test@epoch``/``@total`` (seconds)."""
        index = self._resolve(index)
        c = self._bench.cost(index, dataset, hp)
        latency = c.get("latency_bs1_ms")
        return {
            "flops": c["flops"], "params": c["params"],
            "latency": None if latency is None else latency / 1000,
            "T-train@epoch": c.get("train_seconds_per_epoch"), "T-train@total": c.get("train_seconds_total"),
            "T-ori-test@epoch": c.get("eval_seconds_per_epoch"), "T-ori-test@total": c.get("eval_seconds_total"),
        }

    def simulate_train_eval(self, arch: str | int, dataset: str, iepoch: int | None = None, hp: str = "12",
                            account_time: bool = True) -> tuple[float, float, float, float]:
        """Pretend to train ``arch``: ``(validation accuracy, latency, time cost, total time used)``.

        As NATS-Bench: a random trained seed; on ``cifar10`` the validation
        accuracy comes from ``cifar10-valid``; the time cost is the training
        time up to ``iepoch`` plus one evaluation, and it accumulates in
        ``used_time`` unless ``account_time`` is False.
        """
        index = self._resolve(arch)
        source = "cifar10-valid" if dataset == "cifar10" and "cifar10-valid" in self._bench.datasets else dataset
        info = self.get_more_info(index, source, iepoch=iepoch, hp=hp, is_random=True)
        valid = info.get("valid-accuracy", info["test-accuracy"])
        latency = self.get_cost_info(index, source, hp)["latency"] or 0.0
        time_cost = (info["train-all-time"] or 0.0) + (info.get("valid-per-time") or info.get("test-per-time") or 0.0)
        if account_time:
            self._used_time += time_cost
        return valid, latency, time_cost, self._used_time

    def find_best(self, dataset: str, metric_on_set: str, FLOP_max: float | None = None,
                  Param_max: float | None = None, hp: str = "12") -> tuple[int, float]:
        """``(index, accuracy)`` of the best arch on ``metric_on_set`` ("train", "x-valid"/"valid",
        "x-test"/"test", "ori-test"), within the FLOPs and params limits (millions). ``ori-test`` is
        the whole test set: the test split, or on cifar100 and ImageNet16-120 the pooled valtest."""
        from nasforge.data.registry import get_dataset

        split = {"train": "train", "x-valid": "valid", "valid": "valid", "x-test": "test", "test": "test",
                 "ori-test": "valtest" if get_dataset(dataset).valtest else "test"}.get(metric_on_set)
        if split is None:
            raise QueryError(f"metric_on_set {metric_on_set!r}: expected train, x-valid, x-test or ori-test")
        return self._bench.best(dataset, hp, f"{split}_acc", FLOP_max, Param_max)

    def get_net_config(self, index: int | str, dataset: str) -> dict:
        """The config NATS-Bench's ``get_cell_based_tiny_net`` builds from (nasforge: ``build_network``)."""
        index = self._resolve(index)
        from nasforge.data.registry import get_dataset

        return self._space.net_config(self._space.arch(index), get_dataset(dataset).num_classes)

    def statistics(self, dataset: str, hp: str = "12") -> dict[int, int]:
        """``{seed: number of archs trained with it}`` for a dataset and budget."""
        counts: dict[int, int] = {}
        for index in self._bench.indices:
            for seed in self._bench.trained_seeds(index, dataset, hp):
                counts[seed] = counts.get(seed, 0) + 1
        return dict(sorted(counts.items()))

    def show(self, index: int = -1) -> None:
        """Print one arch's results (or, with -1, what the release holds)."""
        if index < 0:
            print(repr(self))
            print(f"datasets {self._bench.datasets}, budgets {self._bench.budgets}, seeds {self._bench.seeds}")
            return
        for hp in self._bench.budgets:
            print(self.query_by_arch(index, hp))

    def clear_params(self, index: int, hp: str | None = None) -> None:
        """NATS-Bench frees an arch's loaded weights; a release holds none, so there is nothing to free."""

    def reload(self, archive_root: str | None = None, index: int | None = None) -> None:
        """NATS-Bench loads an arch's pickle in fast mode; a release is always queryable, so nothing to load."""

    def get_net_param(self, index: int | str, dataset: str, seed: int | None, hp: str = "12"):
        raise NotImplementedError("nasforge releases hold metrics, not trained weights: rebuild the network with "
                                  "nasforge.models.build_network and train it with `nasforge train-shard`")


def create(file_path_or_dict: str | Path, search_space: str, fast_mode: bool = True, verbose: bool = False) -> NATSFacade:
    """NATS-Bench's ``create``: open a release directory of ``search_space`` ("tss"/"topology",
    "sss"/"size"). ``fast_mode`` is accepted for compatibility: a release always opens lazily."""
    aliases = {"tss": "tss", "topology": "tss", "nats-bench-tss": "tss", "sss": "sss", "size": "sss",
               "nats-bench-sss": "sss"}
    if search_space.lower() not in aliases:
        raise InputError(f"search space {search_space!r}: expected one of {sorted(aliases)}")
    bench = Benchmark.open(file_path_or_dict)
    space = aliases[search_space.lower()]
    if bench.space != space:
        raise InputError(f"{file_path_or_dict} is a {bench.space} release, not {space}")
    return NATSFacade(bench, space, verbose)
