"""Multi-trial NAS algorithms on a release, under NATS-Bench's simulated-time protocol
(``simulation``): random search, REA, REINFORCE, BOHB and local search.

A run ends with the first evaluation that exhausts the budget; its answer is
the arch with the best validation accuracy seen, scored by that arch's test
accuracy (seed mean). Every run owns a ``random.Random``, so runs are
reproducible by seed and independent of one another. Local search's
neighbourhood is the nearest held archs; REINFORCE samples from the whole
space and scores the nearest held arch.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable

import numpy as np
import polars as pl

from nasforge.api.benchmark import Benchmark
from nasforge.errors import InputError
from nasforge.schema import TRAJECTORY_SCHEMA, budget_name
from nasforge.search.bohb import bohb
from nasforge.search.simulation import SimulatedBench, TimeModel, check_run_limits


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


ALGORITHMS: dict[str, Callable[[SimulatedBench], None]] = {
    "random": random_search,
    "rea": regularized_evolution,
    "reinforce": reinforce,
    "bohb": bohb,
    "local": local_search,
}


def run_search(bench: Benchmark, algo: str, dataset: str, hp: str, time_budget: float, runs: int,
               first_seed: int = 0, on_run: Callable[[int], None] | None = None,
               time_model: TimeModel | None = None, max_evaluations: int = 10_000) -> pl.DataFrame:
    """``runs`` independent runs (seeds first_seed, first_seed+1, ...): one trajectory row per evaluation."""
    if algo not in ALGORITHMS:
        raise InputError(f"unknown algorithm {algo!r}: expected one of {sorted(ALGORITHMS)}")
    check_run_limits(time_budget, runs, first_seed, max_evaluations)
    rows = []
    for run in range(first_seed, first_seed + runs):
        env = SimulatedBench(bench, dataset, budget_name(hp), random.Random(run), time_budget,
                             time_model or TimeModel(), max_evaluations)
        ALGORITHMS[algo](env)
        rows += [{"algo": algo, "dataset": dataset, "hp": env.hp, "run": run, **h} for h in env.history]
        if on_run:
            on_run(run)
    return pl.DataFrame(rows, schema=TRAJECTORY_SCHEMA)

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
