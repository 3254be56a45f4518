"""The train phase: NATS-Bench's protocol, deterministic and resumable, one shard per job.

``shard`` runs a job, ``loop`` is the epoch loop every engine shares,
``reference`` and ``fused`` are the engines, ``splits`` holds the data on the
device and ``environment`` pins threads, kernels and devices. Nothing is
imported here: the package needs torch, and a caller names what it uses.
"""
