"""Simulated time: what a multi-trial search on a release is charged, and what every run shares.

Each evaluation looks up an arch's validation accuracy (a seed drawn by the
run's own generator, as NATS-Bench draws a random trial) and charges the time
that training it takes against a time budget. That time comes from a
``TimeModel``: this build's measured seconds (NATS-Bench's protocol, which
stores one measured run's times), or seconds predicted from the cost model's
FLOPs at a stated throughput. Measured seconds differ on every rebuild, and so
would every trajectory; the FLOPs model is what lets the pipeline's search
results be rebuilt bit for bit.

A release may hold a sample of the space. Mutation changes one decision (an
edge's op, a layer's width) at random, as NATS-Bench does, and moves to the
held arch nearest to that mutant (other than the parent); on a full release
the mutant itself is held, so this is exactly NATS-Bench's mutation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from nasforge.api.benchmark import Benchmark, QueryError
from nasforge.data.registry import get_dataset
from nasforge.errors import InputError
from nasforge.schema import epochs_of
from nasforge.spaces import get_space

TIME_MODELS = ("measured", "flops")


@dataclass(frozen=True)
class TimeModel:
    """Seconds an arch takes to train one epoch and to evaluate once, on one dataset.

    ``flops``: a training step costs three forward passes (forward, and a
    backward twice as dear), so an epoch is 3 * FLOPs * training images plus
    FLOPs * evaluation images, at ``gflops`` sustained multiply-accumulates
    per second (the cost model counts MACs, as NATS-Bench's FLOPs do).
    """

    kind: str = "measured"
    gflops: float = 100.0

    def __post_init__(self) -> None:
        if self.kind not in TIME_MODELS:
            raise InputError(f"unknown time model {self.kind!r}: expected one of {list(TIME_MODELS)}")
        if not (math.isfinite(self.gflops) and self.gflops > 0):
            raise InputError(f"time model throughput must be a positive finite number, got gflops={self.gflops}")

    def epoch_seconds(self, bench: Benchmark, index: int, dataset: str, hp: str) -> tuple[float, float]:
        """(train seconds per epoch, seconds of one evaluation pass)."""
        cost = bench.cost(index, dataset, hp)
        if self.kind == "measured":
            if cost.get("train_seconds_per_epoch") is None:
                raise QueryError(f"{bench.root}: no measured train times for arch {index} on {dataset} hp{hp}; "
                                 "simulated-time search needs measured/ (or the flops time model)")
            return cost["train_seconds_per_epoch"], cost["eval_seconds_per_epoch"]
        spec = get_dataset(dataset)
        macs_per_second = self.gflops * 1e9
        flops = cost["flops"] * 1e6
        return 3 * flops * spec.train_images / macs_per_second, flops * spec.eval_images / macs_per_second

@cache
def space_codes(space: str) -> np.ndarray:
    """Every arch of the space encoded once per process (a run must not pay 0.2 s to re-encode)."""
    sp = get_space(space)
    return np.array([sp.encode(a) for a in sp], dtype=np.int8)


@dataclass
class SearchProblem:
    """What every run on one (release, dataset, budget, time model) shares, built once: the held
    archs, their encodings, a lookup from encoding to arch, and caches of neighbours and seconds.
    A run then costs what its evaluations cost, whatever the size of the release."""

    bench: Benchmark
    dataset: str
    hp: str
    time_model: TimeModel

    def __post_init__(self) -> None:
        space = self.bench.space
        self.indices = np.array(self.bench.indices)
        self.codes = space_codes(space)[self.indices]
        self.choices = get_space(space).choices
        self.position = {int(i): k for k, i in enumerate(self.indices)}
        self.by_code = {code.tobytes(): k for k, code in enumerate(self.codes)}
        self.neighbours: dict[int, list[int]] = {}
        self.seconds: dict[int, tuple[float, float]] = {}
        self.epochs = epochs_of(self.hp)

    @classmethod
    def of(cls, bench: Benchmark, dataset: str, hp: str, time_model: TimeModel) -> SearchProblem:
        """The problem of these settings, built on first use and kept on the benchmark."""
        cache = bench.__dict__.setdefault("_search_problems", {})
        key = (dataset, hp, time_model)
        if key not in cache:
            cache[key] = cls(bench, dataset, hp, time_model)
        return cache[key]


@dataclass
class SimulatedBench:
    """One run's view of a search problem: its generator, its clock and its history."""

    bench: Benchmark
    dataset: str
    hp: str
    rng: random.Random
    time_budget: float
    time_model: TimeModel = field(default_factory=TimeModel)
    max_evaluations: int = 10_000
    used: float = 0.0
    history: list[dict] = field(default_factory=list)
    _best: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        check_run_limits(self.time_budget, 1, 0, self.max_evaluations)
        problem = SearchProblem.of(self.bench, self.dataset, self.hp, self.time_model)
        self.problem = problem
        self.indices, self.codes, self.choices = problem.indices, problem.codes, problem.choices
        self.position, self.epochs = problem.position, problem.epochs
        self._neighbours, self._seconds = problem.neighbours, problem.seconds
        self.epoch_seconds(int(self.indices[0]))  # fails early when the time model has no numbers
        if "valid" not in self.splits:
            raise QueryError(f"{self.dataset} has no validation split; search on it would select on the test set")

    @property
    def splits(self) -> set[str]:
        final = self.bench.final(int(self.indices[0]), self.dataset, self.hp)
        return {s for s in ("valid", "test") if final[f"{s}_acc"] is not None}

    @property
    def exhausted(self) -> bool:
        """Out of simulated time, or of evaluations: the second bound ends a run even when
        seconds are tiny or the budget is huge, so no search loops forever."""
        return self.used >= self.time_budget or len(self.history) >= self.max_evaluations

    def random_arch(self) -> int:
        return int(self.indices[self.rng.randrange(len(self.indices))])

    def neighbours(self, index: int) -> list[int]:
        """The held archs nearest to ``index`` (fewest differing decisions, at least one)."""
        if index not in self._neighbours:
            distance = (self.codes != self.codes[self.position[index]]).sum(1)
            nearest = distance[distance > 0].min()
            self._neighbours[index] = [int(i) for i in self.indices[distance == nearest]]
        return self._neighbours[index]

    def mutate(self, index: int) -> int:
        """One random decision changed, then the nearest held arch to the mutant other than ``index``."""
        code = self.codes[self.position[index]].copy()
        k = self.rng.randrange(len(code))
        code[k] = self.rng.choice([c for c in range(self.choices) if c != code[k]])
        held = self.problem.by_code.get(code.tobytes())
        if held is not None:  # the mutant itself is held (always, on a full release): the one nearest
            self.rng.randrange(1)  # the draw the general case makes among its ties, so runs stay the same
            return int(self.indices[held])
        distance = (self.codes != code).sum(1)
        distance[self.position[index]] = len(code) + 1
        nearest = np.flatnonzero(distance == distance.min())
        return int(self.indices[nearest[self.rng.randrange(len(nearest))]])

    def project(self, code: tuple[int, ...]) -> int:
        """The held arch nearest to a point of the whole space (lowest index on ties)."""
        held = self.problem.by_code.get(np.array(code, dtype=self.codes.dtype).tobytes())
        if held is not None:
            return int(self.indices[held])
        distance = (self.codes != np.array(code)).sum(1)
        return int(self.indices[int(np.argmin(distance))])

    def epoch_seconds(self, index: int) -> tuple[float, float]:
        if index not in self._seconds:
            self._seconds[index] = self.time_model.epoch_seconds(self.bench, index, self.dataset, self.hp)
        return self._seconds[index]

    def draw_seed(self, index: int) -> int:
        """The trial (seed) an evaluation sees, drawn as NATS-Bench draws one."""
        return self.rng.choice(self.bench.trained_seeds(index, self.dataset, self.hp))

    def charge(self, index: int, epochs: int) -> None:
        """Simulated time of training ``index`` for ``epochs`` epochs and evaluating it once."""
        train, evaluation = self.epoch_seconds(index)
        self.used += train * epochs + evaluation

    def evaluate(self, index: int) -> float:
        """Validation accuracy of one trained seed after the full budget; charges its training time."""
        valid = self.bench.final(index, self.dataset, self.hp, self.draw_seed(index))["valid_acc"]
        self.charge(index, self.epochs)
        return self.record(index, valid)

    def record(self, index: int, valid: float | None) -> float:
        """Log a full-budget evaluation in the trajectory (the incumbent only ever comes from these)."""
        valid = -math.inf if valid is None or math.isnan(valid) else valid  # a diverged run is never chosen
        if self._best is None or valid > self._best[0]:
            self._best = (valid, index)
        best_valid, best_index = self._best
        self.history.append({
            "step": len(self.history), "simulated_seconds": self.used, "arch_index": index,
            "valid_acc": valid, "best_arch_index": best_index, "best_valid_acc": best_valid,
            "best_test_acc": self.bench.final(best_index, self.dataset, self.hp)["test_acc"],
        })
        return valid

MAX_TIME_BUDGET = 1e12  # simulated seconds: 30,000 years, beyond any search's need


def check_run_limits(time_budget: float, runs: int, first_seed: int, max_evaluations: int) -> None:
    """Refuse run settings that could not end or cannot be stored, before any run starts."""
    if not (isinstance(time_budget, (int, float)) and math.isfinite(time_budget) and 0 < time_budget <= MAX_TIME_BUDGET):
        raise InputError(f"time budget {time_budget!r} is not allowed: expected simulated seconds in (0, {MAX_TIME_BUDGET:g}]")
    if runs < 1:
        raise InputError(f"runs={runs} is not allowed: expected at least 1")
    if first_seed < 0 or first_seed + runs > 2**63:
        raise InputError(f"first seed {first_seed} is not allowed: expected 0 <= seed and seed + runs <= 2**63")
    if max_evaluations < 1:
        raise InputError(f"max_evaluations={max_evaluations} is not allowed: expected at least 1")
