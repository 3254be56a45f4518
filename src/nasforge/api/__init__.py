"""Query a nasforge release from Python: a native API and a NATS-Bench-compatible facade."""

from nasforge.api.benchmark import Benchmark, QueryError
from nasforge.api.facade import NASBench201API, NATSFacade, NATSsize, NATStopology, create

__all__ = ["Benchmark", "NASBench201API", "NATSFacade", "NATSsize", "NATStopology", "QueryError", "create"]
