"""Where every phase writes under ``results/``: the one owner of these paths.

The Snakefile declares each rule's inputs and outputs with these methods
(called without arguments they give Snakemake's wildcard patterns, such as
``results/train/{space}/{dataset}/hp{hp}/seed{seed}/shard{k}.parquet``), the
commands read and write through the same methods, and so do the tests: a
folder renamed here is renamed everywhere. Folders are named after their phase
(``data``, ``plan``, ``train``, ``aggregate``, ``validate``, ``search``,
``oneshot``, ``analysis``, ``release``). Wall-clock measurements, which can never be
byte-stable, live in a tree of their own under ``measured/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AGGREGATE_TABLES = ("epochs", "archs")
PROTOCOLS = "protocols.json"  # beside the aggregate tables: the protocol each budget's shards recorded
MEASURED_TABLES = ("times", "latency", "arch_times")
FIGURES = ("accuracy_distribution", "params_vs_accuracy", "valid_vs_test", "rank_correlation", "seed_agreement",
           "proxy_correlation")
SEARCH_FILES = ("proxies.parquet", "trajectories.parquet", "summary.parquet", "summary.md",
                "search_trajectories.png")
ONESHOT_FILES = ("results.parquet", "added_epochs.parquet", "summary.parquet", "summary.md", "oneshot_search.png")


@dataclass(frozen=True)
class Results:
    """The phase outputs under one root; each method's defaults are Snakemake wildcards."""

    root: str = "results"

    def _at(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    # data
    def data(self, dataset: str = "{dataset}") -> str:
        return self._at("data", dataset)

    def data_manifest(self, dataset: str = "{dataset}") -> str:
        return self._at("data", dataset, "manifest.json")

    # plan
    def plan(self, space: str = "{space}") -> str:
        return self._at("plan", f"{space}.parquet")

    # train
    def shard(self, space: str = "{space}", dataset: str = "{dataset}", hp: str = "{hp}", seed: int | str = "{seed}",
              k: int | str = "{k}", kind: str = "") -> str:
        """A train job's metrics table, or with ``kind`` "timing"/"cost" its measured tables."""
        rel = f"{space}/{dataset}/hp{hp}/seed{seed}"
        if kind:
            return self._at("measured", "train", rel, f"shard{k}.{kind}.parquet")
        return self._at("train", rel, f"shard{k}.parquet")

    def shard_weights(self, space: str = "{space}", dataset: str = "{dataset}", hp: str = "{hp}",
                      seed: int | str = "{seed}", k: int | str = "{k}") -> str:
        """A train job's trained weights (``train.save_weights``): ``{arch_index}.safetensors`` per arch."""
        return self._at("train", f"{space}/{dataset}/hp{hp}/seed{seed}", f"shard{k}.weights")

    # aggregate
    def aggregate(self, space: str = "{space}") -> str:
        return self._at("aggregate", space)

    def aggregate_table(self, space: str = "{space}", table: str = "{table}") -> str:
        return self._at("aggregate", space, f"{table}.parquet")

    def measured_aggregate(self, space: str = "{space}") -> str:
        return self._at("measured", "aggregate", space)

    def measured_table(self, space: str = "{space}", table: str = "{table}") -> str:
        return self._at("measured", "aggregate", space, f"{table}.parquet")

    # validate
    def validate(self, space: str = "{space}") -> str:
        return self._at("validate", space)

    def validation_summary(self, space: str = "{space}") -> str:
        return self._at("validate", space, "summary.json")

    # search
    def search(self, space: str = "{space}") -> str:
        return self._at("search", space)

    def search_file(self, space: str = "{space}", name: str = "{name}") -> str:
        return self._at("search", space, name)

    def proxies_part(self, space: str = "{space}", dataset: str = "{dataset}") -> str:
        """One proxies job's table: every planned arch scored on one dataset."""
        return self._at("search", space, "proxies", f"{dataset}.parquet")

    def search_run(self, space: str = "{space}", algo: str = "{algo}", dataset: str = "{dataset}") -> str:
        """One suite job's trajectories: one algorithm on one dataset (every budget)."""
        return self._at("search", space, "runs", algo, f"{dataset}.parquet")

    # oneshot (weight-sharing searches): the algorithm implies the space
    def oneshot(self) -> str:
        return self._at("oneshot")

    def oneshot_file(self, name: str = "{name}") -> str:
        return self._at("oneshot", name)

    def oneshot_run(self, method: str = "{method}", dataset: str = "{dataset}", seed: int | str = "{seed}",
                    measured: bool = False) -> str:
        """One weight-sharing search job's per-epoch table, or with ``measured`` its seconds."""
        rel = ("oneshot", "runs", method, dataset, f"seed{seed}.parquet")
        return self._at("measured", *rel) if measured else self._at(*rel)

    def oneshot_added(self, space: str, dataset: str, hp: str, seed: int | str, kind: str = "") -> str:
        """A derived arch's training the benchmark lacked (a train shard of the scoring step)."""
        rel = f"{space}/{dataset}/hp{hp}/seed{seed}"
        if kind:
            return self._at("measured", "oneshot", "added", rel, f"{kind}.parquet")
        return self._at("oneshot", "added", rel, "epochs.parquet")

    # analysis
    def analysis(self, space: str = "{space}") -> str:
        return self._at("analysis", space)

    def analysis_metrics(self, space: str = "{space}") -> str:
        return self._at("analysis", space, "metrics.json")

    # release
    def releases(self) -> str:
        return self._at("release")

    def release(self, name: str) -> str:
        return self._at("release", name)

    # logs
    def log(self, phase: str, name: str) -> str:
        return self._at("logs", phase, f"{name}.log")


RESULTS = Results()


def results_at(root: Results | Path | str) -> Results:
    """The layout under ``root``, however the caller names it."""
    return root if isinstance(root, Results) else Results(str(root))
