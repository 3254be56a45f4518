"""The train phase: NATS-Bench's protocol, deterministic and resumable, one shard per job."""

from nasforge.train.protocol import Protocol, epochs_of
from nasforge.train.shard import ShardJob, run_shard

__all__ = ["Protocol", "ShardJob", "epochs_of", "run_shard"]
