"""nasforge: build, rebuild, audit and publish NAS benchmarks as reproducible data products."""

from nasforge import numerics

# Before torch or numpy is imported anywhere: their kernels read these variables once.
numerics.pin_environment()

__version__ = "0.2.0"
