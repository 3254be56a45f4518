"""Multi-trial NAS on a release under NATS-Bench's simulated-time protocol.

Each evaluation looks up an arch's validation accuracy (a seed drawn by the
run's own generator, as NATS-Bench draws a random trial) and charges the time
that training it takes against a time budget. That time comes from a
``TimeModel``: this build's measured seconds (NATS-Bench's protocol, which
stores one measured run's times), or seconds predicted from the cost model's
FLOPs at a stated throughput. Measured seconds differ on every rebuild, and so
would every trajectory; the FLOPs model is what lets the pipeline's search
results be rebuilt bit for bit. A run ends with the first evaluation that
exhausts the budget; its answer is the arch with the best validation accuracy
seen, scored by that arch's test accuracy (seed mean). Every run owns a ``random.Random``, so runs
are reproducible by seed and independent of one another.

A release may hold a sample of the space. Mutation changes one decision (an
edge's op, a layer's width) at random, as NATS-Bench does, and moves to the
held arch nearest to that mutant (other than the parent); on a full release
the mutant itself is held, so this is exactly NATS-Bench's mutation. Local
search's neighbourhood is the nearest held archs; REINFORCE samples from the
whole space and scores the nearest held arch.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import polars as pl

from nasforge.api.benchmark import Benchmark, QueryError
from nasforge.data.registry import get_dataset
from nasforge.spaces import get_space, sss, tss
from nasforge.train.protocol import epochs_of

TRAJECTORY_SCHEMA = {
    "algo": pl.String, "dataset": pl.String, "hp": pl.String, "run": pl.Int64, "step": pl.Int64,
    "simulated_seconds": pl.Float64, "arch_index": pl.Int64, "valid_acc": pl.Float64,
    "best_arch_index": pl.Int64, "best_valid_acc": pl.Float64, "best_test_acc": pl.Float64,
    "score": pl.Float64,  # a training-free search's proxy score (null for multi-trial algorithms)
}
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
            raise ValueError(f"unknown time model {self.kind!r}: expected one of {list(TIME_MODELS)}")
        if self.gflops <= 0:
            raise ValueError(f"time model throughput must be positive, got gflops={self.gflops}")

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


def encode(space: str, index: int) -> tuple[int, ...]:
    """An arch as one choice per decision: 6 op ids (TSS) or 5 channel ids (SSS)."""
    arch = get_space(space).arch(index)
    if space == "tss":
        return tuple(tss.OPS.index(op) for op in tss.parse_arch(arch))
    return tuple(sss.CHANNELS.index(c) for c in sss.parse_arch(arch))


@cache
def space_codes(space: str) -> np.ndarray:
    """Every arch of the space encoded once per process (a run must not pay 0.2 s to re-encode)."""
    return np.array([encode(space, i) for i in range(len(get_space(space)))], dtype=np.int8)


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
        self.choices = len(tss.OPS) if space == "tss" else len(sss.CHANNELS)
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


def random_search(env: SimulatedBench) -> None:
    while not env.exhausted:
        env.evaluate(env.random_arch())


def regularized_evolution(env: SimulatedBench, population: int = 10, sample: int = 3) -> None:
    """REA (Real et al. 2019) with NATS-Bench's settings: population 10, tournament of 3, oldest dies."""
    alive: deque[tuple[int, float]] = deque()
    while len(alive) < population and not env.exhausted:
        arch = env.random_arch()
        alive.append((arch, env.evaluate(arch)))
    while not env.exhausted:
        parent = max(env.rng.sample(list(alive), min(sample, len(alive))), key=lambda m: m[1])[0]
        child = env.mutate(parent)
        alive.append((child, env.evaluate(child)))
        alive.popleft()


def reinforce(env: SimulatedBench, lr: float = 0.01, baseline_momentum: float = 0.9) -> None:
    """REINFORCE (Williams 1992) as NATS-Bench runs it: a softmax policy per decision, Adam at lr 0.01,
    an exponential-moving-average baseline, reward = validation accuracy / 100."""
    decisions = env.codes.shape[1]
    logits = np.zeros((decisions, env.choices))
    m, v, t = np.zeros_like(logits), np.zeros_like(logits), 0
    baseline = None
    while not env.exhausted:
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        code = tuple(env.rng.choices(range(env.choices), weights=p)[0] for p in probs)
        reward = env.evaluate(env.project(code)) / 100
        if not math.isfinite(reward):
            reward = 0.0
        baseline = reward if baseline is None else baseline_momentum * baseline + (1 - baseline_momentum) * reward
        grad = -(reward - baseline) * (np.eye(env.choices)[list(code)] - probs)  # of -log pi * advantage
        t += 1
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        logits -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)


def local_search(env: SimulatedBench) -> None:
    """First-improvement hill climbing over nearest neighbours, restarting from a random
    unvisited arch at each local optimum (White et al. 2020's local search for NAS).
    It ends early once every held arch is evaluated: nothing is left to learn."""
    seen: dict[int, float] = {}

    def score(arch: int) -> float:
        if arch not in seen:
            seen[arch] = env.evaluate(arch)
        return seen[arch]

    current = env.random_arch()
    score(current)
    while not env.exhausted:
        neighbours = [n for n in env.neighbours(current) if n not in seen]
        env.rng.shuffle(neighbours)
        for n in neighbours:
            if env.exhausted:
                return
            if score(n) > seen[current]:
                current = n
                break
        else:
            unvisited = [int(i) for i in env.indices if int(i) not in seen]
            if not unvisited or env.exhausted:
                return
            current = env.rng.choice(unvisited)
            score(current)


def _bohb(env: SimulatedBench) -> None:
    from nasforge.search.bohb import bohb  # optuna is imported only by the run that uses it

    bohb(env)


ALGORITHMS: dict[str, Callable[[SimulatedBench], None]] = {
    "random": random_search,
    "rea": regularized_evolution,
    "reinforce": reinforce,
    "bohb": _bohb,
    "local": local_search,
}


def run_search(bench: Benchmark, algo: str, dataset: str, hp: str, time_budget: float, runs: int,
               first_seed: int = 0, on_run: Callable[[int], None] | None = None,
               time_model: TimeModel | None = None, max_evaluations: int = 10_000) -> pl.DataFrame:
    """``runs`` independent runs (seeds first_seed, first_seed+1, ...): one trajectory row per evaluation."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}: expected one of {sorted(ALGORITHMS)}")
    check_run_limits(time_budget, runs, first_seed, max_evaluations)
    rows = []
    for run in range(first_seed, first_seed + runs):
        env = SimulatedBench(bench, dataset, f"{int(hp):02d}", random.Random(run), time_budget,
                             time_model or TimeModel(), max_evaluations)
        ALGORITHMS[algo](env)
        rows += [{"algo": algo, "dataset": dataset, "hp": env.hp, "run": run, **h} for h in env.history]
        if on_run:
            on_run(run)
    return pl.DataFrame(rows, schema=TRAJECTORY_SCHEMA)


MAX_TIME_BUDGET = 1e12  # simulated seconds: 30,000 years, beyond any search's need


def check_run_limits(time_budget: float, runs: int, first_seed: int, max_evaluations: int) -> None:
    """Refuse run settings that could not end or cannot be stored, before any run starts."""
    if not (isinstance(time_budget, (int, float)) and math.isfinite(time_budget) and 0 < time_budget <= MAX_TIME_BUDGET):
        raise ValueError(f"time budget {time_budget!r} is not allowed: expected simulated seconds in (0, {MAX_TIME_BUDGET:g}]")
    if runs < 1:
        raise ValueError(f"runs={runs} is not allowed: expected at least 1")
    if first_seed < 0 or first_seed + runs > 2**63:
        raise ValueError(f"first seed {first_seed} is not allowed: expected 0 <= seed and seed + runs <= 2**63")
    if max_evaluations < 1:
        raise ValueError(f"max_evaluations={max_evaluations} is not allowed: expected at least 1")


def final_results(trajectories: pl.DataFrame) -> pl.DataFrame:
    """Per algorithm and dataset: mean and std over runs of the chosen arch's test accuracy."""
    # Sorted, order-keeping groups: polars' parallel group_by may otherwise sum runs in any order,
    # and a mean that differs in the last bit would make the summary table differ on a rebuild.
    last = (trajectories.sort("algo", "dataset", "hp", "run", "step")
            .group_by("algo", "dataset", "hp", "run", maintain_order=True).last())
    return (last.group_by("algo", "dataset", "hp", maintain_order=True)
            .agg(pl.len().alias("runs"), pl.col("best_test_acc").mean().alias("test_acc_mean"),
                 pl.col("best_test_acc").std().alias("test_acc_std"),
                 pl.col("simulated_seconds").mean().alias("simulated_seconds_mean"))
            .sort("dataset", "hp", "algo"))
