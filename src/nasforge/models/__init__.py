"""NATS-Bench's networks for both spaces, and their analytic cost model."""

from nasforge.models.cost import cost
from nasforge.models.networks import TinyNetwork, build_network, layer_plan

__all__ = ["TinyNetwork", "build_network", "cost", "layer_plan"]
