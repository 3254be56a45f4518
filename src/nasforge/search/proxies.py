"""Training-free proxies: one score per arch at initialisation, from one batch.

Each network is the one the trainer starts from (weights from (seed, arch
index)), scored on the seed's first augmented training batch, so a proxy
value belongs to an arch and a seed and never to the order archs were scored
in. Definitions follow the papers and their public code:

- ``naswot`` (Mellor et al. 2021, v2): log|det K| of the Hamming-similarity
  kernel of the batch's binary ReLU codes over every ReLU of the network.
- ``jacob_cov`` (Mellor et al., v1): -sum(log(v + k) + 1 / (v + k)) over the
  eigenvalues v of the correlation matrix of per-image input Jacobians of
  the summed logits, k = 1e-5.
- ``grad_norm``, ``snip``, ``synflow`` (Abdelfattah et al. 2021): over every
  conv and linear weight, the sum of ||dL/dw||, the sum of |w * dL/dw| for
  the cross-entropy of the batch, and (synflow) the sum of w * dR/dw with
  all parameters replaced by their absolute values, BN at its initial
  running statistics (the "no BN" variant) and R the summed logits of one
  all-ones input, in float64.

A network whose output does not depend on its input (the all-``none`` cell)
has no defined naswot or jacob_cov (a singular kernel, a zero Jacobian): it
scores ``-inf``, the worst, which is what a search on the score should do
with it.

All batch proxies use the network in training mode (batch statistics), as
the reference implementations do.
"""

from __future__ import annotations

import copy
import math

import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import InputError
from nasforge.models.cost import cost
from nasforge.schema import PROXY_SCHEMA
from nasforge.spaces import get_space
from nasforge.train.loop import data_generator
from nasforge.train.reference import make_network
from nasforge.train.splits import Splits

JACOB_K = 1e-5


def proxy_batch(splits: Splits, seed: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's first training batch, augmented exactly as the trainer's first step sees it."""
    images, labels = splits.train
    generator = data_generator(seed)
    order = torch.randperm(len(images), generator=generator)[:batch_size].to(images.device)
    x = splits.augmentation.train(images[order], generator).contiguous(memory_format=torch.channels_last)
    return x, labels[order]


def _weights(net: nn.Module) -> list[torch.Tensor]:
    """The prunable weights the gradient proxies sum over: conv and linear weights."""
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def naswot_score(codes: torch.Tensor) -> float:
    """log|det K|, K[i, j] = number of units where images i and j agree (both on or both off)."""
    c = codes.double()
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def jacob_cov_score(jacobian: torch.Tensor) -> float:
    """In torch on the CPU, not numpy: torch's LAPACK is MKL under the pinned ``MKL_CBWR``, while
    numpy's OpenBLAS picks its kernels by CPU, and the score must not depend on the CPU."""
    j = jacobian.reshape(len(jacobian), -1).double().cpu()
    if (j.std(dim=1) == 0).any():
        return -math.inf  # an image the output does not depend on: the correlation is undefined
    eigenvalues = torch.linalg.eigvalsh(torch.corrcoef(j))
    return float(-torch.sum(torch.log(eigenvalues + JACOB_K) + 1.0 / (eigenvalues + JACOB_K)))


def batch_proxies(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """naswot, jacob_cov, grad_norm and snip from one forward and two backward passes."""
    net.train()
    codes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: codes.append((out.detach() > 0).flatten(1)))
             for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        x = x.detach().clone().requires_grad_(True)
        logits = net(x)[1]
    finally:
        for h in hooks:
            h.remove()
    weights = _weights(net)
    grads = torch.autograd.grad(F.cross_entropy(logits, y), weights, retain_graph=True, allow_unused=True)
    (jacobian,) = torch.autograd.grad(logits.sum(), x)
    pairs = [(w, g) for w, g in zip(weights, grads, strict=True) if g is not None]
    return {
        "naswot": naswot_score(torch.cat(codes, 1)) if codes else -math.inf,
        "jacob_cov": jacob_cov_score(jacobian),
        "grad_norm": float(sum(g.double().norm() for _, g in pairs)),
        "snip": float(sum((w.detach().double() * g.double()).abs().sum() for w, g in pairs)),
    }


def synflow(net: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Synaptic flow of a float64 copy with |parameters| and BN at its initial running statistics."""
    net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    device = next(net.parameters()).device
    x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    weights = _weights(net)
    grads = torch.autograd.grad(net(x)[1].sum(), weights, allow_unused=True)
    return float(sum((w.detach() * g).sum() for w, g in zip(weights, grads, strict=True) if g is not None))


def score_arch(space: str, arch_index: int, seed: int, splits: Splits, batch: tuple[torch.Tensor, torch.Tensor],
               device: torch.device) -> dict[str, float]:
    """Every proxy of one arch's initial network (the trainer's, for this seed)."""
    net = make_network(space, arch_index, seed, splits, device)
    scores = batch_proxies(net, *batch)
    scores["synflow"] = synflow(net, splits.image_shape)
    return scores


def score_archs(space: str, archs: list[int], seed: int, splits: Splits, batch_size: int,
                device: torch.device, on_arch=None) -> pl.DataFrame:
    """The proxies table of ``archs`` on one dataset: one row per arch, sorted."""
    if batch_size < 2:
        raise InputError(f"proxy batch_size must be at least 2 (a kernel over one image is trivial), got {batch_size}")
    batch = proxy_batch(splits, seed, batch_size)
    channels, size, _ = splits.image_shape
    rows = []
    for index in sorted(archs):
        arch = get_space(space).arch(index)
        c = cost(space, arch, splits.num_classes, size, channels)
        rows.append({"space": space, "dataset": splits.dataset, "arch_index": index, "arch": arch, "seed": seed,
                     "batch_size": batch_size, **score_arch(space, index, seed, splits, batch, device),
                     "params": c["params"], "flops": c["flops"]})
        if on_arch:
            on_arch(index)
    return pl.DataFrame(rows, schema=PROXY_SCHEMA)
