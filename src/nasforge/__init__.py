"""nasforge: build, rebuild, audit and publish NAS benchmarks as reproducible data products."""

__version__ = "0.1.0"
