"""DARTS-PT: perturbation-based selection from a trained DARTS supernet (Wang et al., ICLR 2021).

Argmax of the alphas is a poor guide to what an op contributes (the paper's point, and why DARTS
collapses onto skip connections on NAS-Bench-201). DARTS-PT instead measures it: edges are decided
one at a time, in a random order; on the current edge, each op is removed from the mixture in turn
(its weight set to zero, the others untouched) and the supernet's validation accuracy measured; the
op whose removal hurts accuracy most is kept, the edge fixed to it (one-hot), and the supernet's
weights fine-tuned for ``finetune_steps`` training batches before the next edge, as the paper tunes
between projections. Runs on the supernet a darts-v1/v2 search leaves after its last epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from nasforge.oneshot.tss_supernet import NUM_OPS, EdgeChoice
from nasforge.spaces.tss import OPS, format_arch


@dataclass(frozen=True)
class PtSettings:
    finetune_steps: int = 10  # training batches of weight tuning after each edge is fixed
    eval_batches: int | None = None  # validation batches per accuracy measurement (None: the whole split)


def _accuracy(search, weights: torch.Tensor, valid: Callable[[], Iterator], limit: int | None) -> float:
    hits = n = 0
    with torch.no_grad():
        search.net.eval()
        for b, (x, y) in enumerate(valid()):
            if limit is not None and b >= limit:
                break
            logits = search.forward(x, EdgeChoice("mix", weights=weights))
            hits += int((logits.argmax(1) == y).sum())
            n += len(y)
        search.net.train()
    return 100.0 * hits / n


def select(search, settings: PtSettings, train: Callable[[], Iterator], valid: Callable[[], Iterator],
           w_optimizer: torch.optim.Optimizer) -> tuple[str, float]:
    """The arch DARTS-PT derives, and the projected supernet's validation accuracy."""
    weights = F.softmax(search.alphas.detach(), dim=-1).clone()
    edges = torch.randperm(weights.shape[0], generator=search.generator).tolist()
    chosen = [0] * weights.shape[0]
    for edge in edges:
        drops = []
        for op in range(NUM_OPS):
            removed = weights.clone()
            removed[edge, op] = 0.0
            drops.append(_accuracy(search, removed, valid, settings.eval_batches))
        chosen[edge] = min(range(NUM_OPS), key=lambda k: (drops[k], k))  # the removal that hurts most
        weights[edge] = F.one_hot(torch.tensor(chosen[edge]), NUM_OPS).to(weights)
        _finetune(search, weights, train, w_optimizer, settings.finetune_steps)
    return format_arch(tuple(OPS[k] for k in chosen)), _accuracy(search, weights, valid, settings.eval_batches)


def _finetune(search, weights: torch.Tensor, train: Callable[[], Iterator], w_optimizer: torch.optim.Optimizer,
              steps: int) -> None:
    done = 0
    while done < steps:
        for _, (x, y), _ in train():
            if done >= steps:
                return
            w_optimizer.zero_grad()
            loss = search.criterion(search.forward(x, EdgeChoice("mix", weights=weights)), y)
            loss.backward()
            w_optimizer.step()
            done += 1
