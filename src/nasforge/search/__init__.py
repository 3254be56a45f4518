"""NAS algorithms benchmarked on a release: multi-trial search under simulated time."""

from nasforge.search.multi_trial import ALGORITHMS, SimulatedBench, final_results, run_search

__all__ = ["ALGORITHMS", "SimulatedBench", "final_results", "run_search"]
