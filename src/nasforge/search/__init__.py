"""NAS algorithms benchmarked on a release: multi-trial search under simulated time (random,
REA, REINFORCE, BOHB, local search) and training-free proxies with a NASWOT-style search."""

from nasforge.search.multi_trial import ALGORITHMS, final_results, run_search
from nasforge.search.simulation import SimulatedBench, TimeModel

__all__ = ["ALGORITHMS", "SimulatedBench", "TimeModel", "final_results", "run_search"]
