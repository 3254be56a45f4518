"""NATS-Bench's networks for both spaces (``networks``, needs torch) and their analytic cost model
(``cost``, torch-free: the phases that only count params and FLOPs never import torch)."""

from nasforge.models.cost import cost, layer_plan

__all__ = ["cost", "layer_plan"]
