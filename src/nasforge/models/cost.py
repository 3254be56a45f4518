"""Analytic cost model: parameters and FLOPs exactly as NATS-Bench counts them.

NATS-Bench counts every parameter (BN affine included) in millions, and FLOPs
as multiply-accumulates of convolutions and linear layers only (their bias
adds included; pooling, BN and additions are free), in millions. Computing it
from the layer plan, rather than by building a module and hooking it, costs
microseconds, so validation can recheck all 32,768 SSS archs.
"""

from __future__ import annotations

from nasforge.spaces import Layers, Space, get_space


def layer_plan(space: str | Space, arch: str) -> tuple[tuple[str, ...], Layers]:
    """The cell ops and the (channels, is_reduction) of every layer after the stem, as the space
    describes its skeleton: one plan drives both the torch module and this cost model, so the
    two can only disagree on arithmetic, which the tests check."""
    return get_space(space).skeleton(arch)


def _conv(c_in: int, c_out: int, k: int, hw: int) -> tuple[int, int]:
    """(params, MACs) of a bias-free k x k conv producing an hw x hw map."""
    weights = k * k * c_in * c_out
    return weights, weights * hw * hw


def _relu_conv_bn(c_in: int, c_out: int, k: int, hw: int) -> tuple[int, int]:
    p, f = _conv(c_in, c_out, k, hw)
    return p + 2 * c_out, f


def _edge(op: str, c_in: int, c_out: int, hw: int) -> tuple[int, int]:
    if op == "none":
        return 0, 0
    if op == "nor_conv_1x1":
        return _relu_conv_bn(c_in, c_out, 1, hw)
    if op == "nor_conv_3x3":
        return _relu_conv_bn(c_in, c_out, 3, hw)
    # skip_connect and avg_pool_3x3 are free unless the channel count changes:
    # then a 1x1 conv + BN adapts it (FactorizedReduce / the pool's preprocess).
    return (0, 0) if c_in == c_out else _relu_conv_bn(c_in, c_out, 1, hw)


def cost(space: str, arch: str, num_classes: int = 10, input_size: int = 32, in_channels: int = 3) -> dict[str, float]:
    """``{"params": M, "flops": M}`` of ``arch`` for the given classes and input."""
    ops, layers = layer_plan(space, arch)
    hw = input_size
    c_prev = layers[0][0]
    params, flops = _conv(in_channels, c_prev, 3, hw)
    params += 2 * c_prev  # stem BN
    for c_out, reduction in layers:
        if reduction:
            hw = (hw + 1) // 2
            blocks = (
                _relu_conv_bn(c_prev, c_out, 3, hw),
                _relu_conv_bn(c_out, c_out, 3, hw),
                _conv(c_prev, c_out, 1, hw),  # shortcut after AvgPool(2)
            )
        else:
            blocks = []
            k = 0
            for j in range(1, 4):
                for i in range(j):
                    blocks.append(_edge(ops[k], c_prev if i == 0 else c_out, c_out, hw))
                    k += 1
        params += sum(p for p, _ in blocks)
        flops += sum(f for _, f in blocks)
        c_prev = c_out
    params += 2 * c_prev  # last BN
    params += c_prev * num_classes + num_classes
    flops += c_prev * num_classes + num_classes
    return {"params": params / 1e6, "flops": flops / 1e6}


def activation_elements(space: str, arch: str, input_size: int = 32) -> int:
    """Activation values one image keeps for the backward pass, counted layer by layer.

    A ReLU-conv-BN edge keeps its ReLU output, conv output and BN output; pooling
    and a stacked identity keep one map; every node keeps its sum. A residual
    block keeps its two ReLU-conv-BNs, the shortcut's pool and conv, and the sum.
    It is an estimate for packing fused groups, not an allocator trace: the
    planner applies a safety factor, and a group that still runs out is split.
    """
    ops, layers = layer_plan(space, arch)
    hw = input_size * input_size
    c_prev = layers[0][0]
    total = 2 * c_prev * hw  # stem conv + BN
    for c_out, reduction in layers:
        if reduction:
            hw = ((int(hw**0.5) + 1) // 2) ** 2
            total += (3 + 3 + 2 + 1) * c_out * hw
        else:
            per_edge = {"none": 0, "skip_connect": 1, "avg_pool_3x3": 1, "nor_conv_1x1": 3, "nor_conv_3x3": 3}
            total += sum(per_edge[op] for op in ops) * c_out * hw + 3 * c_out * hw
        c_prev = c_out
    return total + 2 * c_prev * hw  # last BN + ReLU


def train_memory_bytes(space: str, arch: str, batch: int, input_size: int = 32, num_classes: int = 100,
                       in_channels: int = 3) -> int:
    """Estimated training memory of one arch in fp32: the activations a batch keeps for the
    backward pass, plus weights, gradients and SGD momentum. Counting every BN output as kept
    is generous enough to cover the transient gradient buffers (all-conv TSS cell, batch 256:
    3.0 GiB estimated; about 1.6 GiB measured in fp32 on an H100, see PERFORMANCE.md)."""
    params = cost(space, arch, num_classes, input_size, in_channels)["params"] * 1e6
    return int(4 * (batch * activation_elements(space, arch, input_size) + 3 * params))
