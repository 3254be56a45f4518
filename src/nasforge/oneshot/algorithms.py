"""NATS-Bench's nine weight-sharing searches, step for step as xautodl's ``exps/NATS-algos`` run them.

Every algorithm alternates, per step, a weight update of the supernet on a batch of the training
split and an architecture update on a batch of the validation split (``search-cell.py``'s
``search_func``; ``search-size.py``'s likewise); ENAS trains its controller after each epoch; after
each epoch the algorithm derives an arch (``get_best_arch`` / ``genotype``) and the supernet is
evaluated on the validation split in the algorithm's mode (``valid_func``).

TSS (``search-cell.py``):

- ``darts-v1``/``darts-v2``: softmax-weighted sum of all ops; arch step on the validation loss, first
  order, or second order through one unrolled SGD step (``backward_step_unrolled``); derived arch:
  each edge's argmax.
- ``gdas``: one op per edge drawn by Gumbel-max, straight-through weights (one-hot value, softmax
  gradient), tau annealed from tau_max to tau_min over the epochs; derived: argmax.
- ``setn``: weights trained on one uniformly random arch per step, alphas on the soft mixture;
  derived: the most likely archs under the alphas, each scored on one validation batch, best kept.
- ``random`` (RSPS): weights trained on a uniformly random path in every cell (no node left with only
  ``none``); no arch step; derived: random archs, each scored on one validation batch, best kept.
- ``enas``: weights trained on the controller's samples; the controller trained by REINFORCE on
  validation accuracy (plus an entropy bonus) against a moving baseline; derived: the best of its samples.

SSS (``search-size.py``), every layer's width chosen from 8 candidates:

- ``tas``: two widths drawn per layer (Gumbel, without replacement), their outputs interpolated to the
  wider and mixed by their renormalised probabilities; arch loss is the validation loss.
- ``mask_gumbel`` (FBNet-V2): a soft mask from Gumbel-softmax weights; arch loss the validation loss.
- ``mask_rl`` (TuNAS): one width sampled per layer; REINFORCE with the validation batch accuracy
  against an exponential moving average.
- derived arch: each layer's argmax.

All sampling draws from the job's own ``torch.Generator`` (on the CPU), never from Python's or torch's
global state, so a search is reproducible and a resumed one continues the same draws.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.errors import InputError
from nasforge.oneshot.controller import Controller
from nasforge.oneshot.sss_supernet import CHANNELS, NUM_CHOICES, SizeSupernet, Width
from nasforge.oneshot.tss_supernet import NUM_EDGES, NUM_OPS, EdgeChoice, TopologySupernet
from nasforge.spaces.sss import NUM_LAYERS
from nasforge.spaces.sss import format_arch as format_sizes
from nasforge.spaces.tss import EDGES, OPS
from nasforge.spaces.tss import format_arch as format_cell

TSS_ALGORITHMS = ("darts-v1", "darts-v2", "gdas", "setn", "random", "enas")
SSS_ALGORITHMS = ("tas", "mask_gumbel", "mask_rl")
ALGORITHMS = TSS_ALGORITHMS + SSS_ALGORITHMS
_NONE = OPS.index("none")

#: the arch optimiser (Adam, betas 0.5/0.999) of NATS-Bench's command lines: search-cell.py's defaults
#: (lr 3e-4, weight decay 1e-3, eps 1e-8), ENAS's (lr 1e-3, no decay, eps 1e-3), mask_rl's (no decay)
ARCH_OPTIMIZER = {name: {"lr": 3e-4, "weight_decay": 1e-3, "eps": 1e-8} for name in ALGORITHMS}
ARCH_OPTIMIZER["enas"] = {"lr": 1e-3, "weight_decay": 0.0, "eps": 1e-3}
ARCH_OPTIMIZER["mask_rl"] = {"lr": 3e-4, "weight_decay": 0.0, "eps": 1e-8}


def check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InputError(f"unknown weight-sharing algorithm {algorithm!r}: expected one of {list(ALGORITHMS)}")


def space_of(algorithm: str) -> str:
    return "tss" if algorithm in TSS_ALGORITHMS else "sss"


@dataclass(frozen=True)
class Settings:
    """What a search does beyond the weights' SGD protocol; defaults are NATS-Bench's."""

    channels: int = 16  # TSS supernet: C of the first stage (search-cell.py's --channel) ...
    cells_per_stage: int = 5  # ... and cells per stage (--num_cells)
    tau_max: float = 10.0  # GDAS, TAS, mask_gumbel
    tau_min: float = 0.1
    candidates: int = 100  # eval_candidate_num: archs scored by SETN, RSPS and ENAS's selection
    controller_steps: int = 50  # ENAS: controller updates per epoch ...
    controller_aggregate: int = 20  # ... each averaging this many sampled archs
    controller_entropy_weight: float = 1e-4
    controller_baseline_decay: float = 0.99
    rl_baseline_momentum: float = 0.95  # mask_rl's moving average of the reward


Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == labels).sum()) / len(labels)


def gumbel(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    return -torch.empty(shape, dtype=torch.float32).exponential_(generator=generator).log()


class Search:
    """One algorithm's supernet, architecture state and steps."""

    name: str

    def __init__(self, name: str, num_classes: int, in_channels: int, settings: Settings,
                 generator: torch.Generator, device: torch.device) -> None:
        self.name, self.settings, self.generator, self.device = name, settings, generator, device
        self.net = self._build(num_classes, in_channels).to(device, memory_format=torch.channels_last)
        if hasattr(self, "alphas"):
            self.alphas = nn.Parameter(self.alphas.detach().to(device))
        if hasattr(self, "controller"):
            self.controller.to(device)
        self.tau = settings.tau_max
        self.criterion = nn.CrossEntropyLoss()

    # what the loop needs -------------------------------------------------------------------
    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """GDAS/TAS/mask_gumbel anneal tau linearly from tau_max (first epoch) to tau_min (last)."""
        s = self.settings
        self.tau = s.tau_max - (s.tau_max - s.tau_min) * epoch / max(epochs - 1, 1)

    def weight_logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def arch_step(self, base: tuple[torch.Tensor, torch.Tensor], arch: tuple[torch.Tensor, torch.Tensor],
                  w_optimizer: torch.optim.Optimizer, a_optimizer: torch.optim.Optimizer) -> tuple[float, float]:
        """Update the architecture on a validation batch; (its loss, its accuracy %)."""
        x, y = arch
        logits = self.arch_logits(x)
        loss = self.criterion(logits, y)
        a_optimizer.zero_grad()
        loss.backward()
        a_optimizer.step()
        return loss.item(), accuracy(logits, y)

    def arch_logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def end_epoch(self, valid: Batches, a_optimizer: torch.optim.Optimizer) -> dict:
        """After an epoch's steps (ENAS trains its controller here); extra columns for the epoch's row."""
        return {}

    def select(self, valid: Batches) -> tuple[str, float | None]:
        """The derived arch and, where candidates are scored, its validation batch accuracy."""
        raise NotImplementedError

    def eval_logits(self, x: torch.Tensor, selected: str) -> torch.Tensor:
        """The supernet's forward when it is evaluated after an epoch (``valid_func``)."""
        raise NotImplementedError

    def distribution(self) -> list[list[float]]:
        """The architecture distribution: per decision (edge or layer), the probability of each choice."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def _build(self, num_classes: int, in_channels: int) -> nn.Module:
        raise NotImplementedError

    def _score(self, archs: list, valid: Batches, logits_of: Callable) -> tuple[int, float]:
        """Each candidate scored on the next validation batch (cycling), as ``get_best_arch`` does;
        the first best wins."""
        batches = _cycle(valid)
        scores = []
        with torch.no_grad():
            self.net.eval()
            for arch in archs:
                x, y = next(batches)
                scores.append(accuracy(logits_of(arch, x), y))
            self.net.train()
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return best, scores[best]


def _cycle(valid: Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from valid()


def entropy(probs: list[list[float]]) -> float:
    """Mean over decisions of the entropy (nats) of each decision's distribution."""
    return sum(-sum(p * math.log(p) for p in row if p > 0) for row in probs) / len(probs)


# ---- TSS ---------------------------------------------------------------------------------------
class CellSearch(Search):
    """The five TSS searches that learn alphas (RSPS keeps them unused, as xautodl does)."""

    def _build(self, num_classes: int, in_channels: int) -> nn.Module:
        net = TopologySupernet(num_classes, in_channels, self.settings.channels, self.settings.cells_per_stage)
        self.alphas = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS))
        return net

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def distribution(self) -> list[list[float]]:
        return F.softmax(self.alphas.detach(), dim=-1).double().tolist()

    def genotype(self) -> str:
        return format_cell(tuple(OPS[int(i)] for i in self.alphas.detach().argmax(-1)))

    def soft(self) -> EdgeChoice:
        return EdgeChoice("mix", weights=F.softmax(self.alphas, dim=-1))

    def one(self, ops: tuple[int, ...]) -> EdgeChoice:
        return EdgeChoice("one", index=ops)

    def forward(self, x: torch.Tensor, choice: EdgeChoice) -> torch.Tensor:
        return self.net(x, choice)[1]

    def random_ops(self) -> tuple[int, ...]:
        return tuple(int(i) for i in torch.randint(NUM_OPS, (NUM_EDGES,), generator=self.generator))

    def arch_str(self, ops: tuple[int, ...]) -> str:
        return format_cell(tuple(OPS[i] for i in ops))


class RelaxedCellSearch(CellSearch):
    """DARTS and GDAS: every forward (weight step, arch step, evaluation) through the algorithm's own
    relaxation of the alphas; the derived arch is each edge's argmax."""

    def relaxation(self) -> EdgeChoice:
        raise NotImplementedError

    def weight_logits(self, x):
        return self.forward(x, self.relaxation())

    def arch_logits(self, x):
        return self.forward(x, self.relaxation())

    def select(self, valid):
        return self.genotype(), None

    def eval_logits(self, x, selected):
        return self.forward(x, self.relaxation())


class Darts(RelaxedCellSearch):
    def relaxation(self):
        return self.soft()

    def arch_step(self, base, arch, w_optimizer, a_optimizer):
        if self.name == "darts-v1":
            return super().arch_step(base, arch, w_optimizer, a_optimizer)
        loss, logits = unrolled_arch_gradient(self, base, arch, w_optimizer)
        a_optimizer.step()
        return loss.item(), accuracy(logits, arch[1])


def unrolled_arch_gradient(search: Darts, base: tuple[torch.Tensor, torch.Tensor],
                           arch: tuple[torch.Tensor, torch.Tensor], w_optimizer: torch.optim.Optimizer,
                           r: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS' second-order architecture gradient, as xautodl's ``backward_step_unrolled``: the validation
    loss at the weights one SGD step ahead, w' = w - lr (momentum * buffer + dL_train/dw + wd w), its
    alpha gradient minus lr times the Hessian-vector product d2L_train/(dalpha dw) . dL_val/dw', that
    product by central differences at w +- R dL_val/dw' (R = r / |dL_val/dw'|). Leaves it in
    ``alphas.grad``; returns the unrolled (loss, logits)."""
    net, alphas, criterion = search.net, search.alphas, search.criterion
    weights = list(net.parameters())
    group = w_optimizer.param_groups[0]
    lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
    x, y = base
    loss = criterion(search.forward(x, search.soft()), y)
    grads = torch.autograd.grad(loss, weights)
    with torch.no_grad():
        ahead = []
        for w, g in zip(weights, grads, strict=True):
            buffer = w_optimizer.state.get(w, {}).get("momentum_buffer")
            moment = buffer * momentum if buffer is not None else torch.zeros_like(w)
            ahead.append(w - lr * (moment + g + wd * w))
    unrolled = deepcopy(net)
    with torch.no_grad():
        for w, value in zip(unrolled.parameters(), ahead, strict=True):
            w.copy_(value)
    xa, ya = arch
    choice = search.soft()
    logits = unrolled(xa, choice)[1]
    unrolled_loss = criterion(logits, ya)
    d_alpha, *d_ahead = torch.autograd.grad(unrolled_loss, [alphas, *unrolled.parameters()])
    R = r / torch.cat([v.reshape(-1) for v in d_ahead]).norm()

    def alpha_grad(sign: float) -> torch.Tensor:
        with torch.no_grad():
            for w, v in zip(weights, d_ahead, strict=True):
                w.add_(v, alpha=sign * R)
        g = torch.autograd.grad(criterion(search.forward(x, search.soft()), y), alphas)[0]
        with torch.no_grad():
            for w, v in zip(weights, d_ahead, strict=True):
                w.sub_(v, alpha=sign * R)
        return g

    implicit = (alpha_grad(1.0) - alpha_grad(-1.0)) / (2 * R)
    alphas.grad = (d_alpha - lr * implicit).detach()
    return unrolled_loss.detach(), logits.detach()


class Gdas(RelaxedCellSearch):
    def hard(self) -> EdgeChoice:
        """Straight-through Gumbel (xautodl's ``normalize_archp``): the value of ``one_hot - p.detach() + p``
        is one-hot, its gradient that of the softmax p of (log_softmax(alpha) + gumbel) / tau."""
        while True:
            g = gumbel(self.alphas.shape, self.generator).to(self.alphas.device)
            probs = F.softmax((self.alphas.log_softmax(dim=1) + g) / self.tau, dim=1)
            if torch.isfinite(g).all() and torch.isfinite(probs).all():
                break
        index = probs.max(-1, keepdim=True)[1]
        one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        return EdgeChoice("gdas", weights=one_hot - probs.detach() + probs, index=tuple(index.view(-1).tolist()))

    def relaxation(self):
        return self.hard()


class Setn(CellSearch):
    def weight_logits(self, x):
        return self.forward(x, self.one(self.random_ops()))

    def arch_logits(self, x):
        return self.forward(x, self.soft())

    def select(self, valid):
        """The ``candidates`` archs of highest log-probability under the alphas (``return_topK``),
        ties in enumeration order."""
        logp = F.log_softmax(self.alphas.detach().double(), dim=-1)
        archs = torch.tensor(list(itertools.product(range(NUM_OPS), repeat=NUM_EDGES)))
        scores = logp[torch.arange(NUM_EDGES), archs].sum(1)
        order = sorted(range(len(archs)), key=lambda i: (-float(scores[i]), i))[: self.settings.candidates]
        candidates = [tuple(archs[i].tolist()) for i in order]
        best, score = self._score(candidates, valid, lambda ops, x: self.forward(x, self.one(ops)))
        return self.arch_str(candidates[best]), score

    def eval_logits(self, x, selected):
        return self.forward(x, EdgeChoice.arch(selected))


class RandomSharing(CellSearch):
    """RSPS (Li & Talwalkar): random sampling with parameter sharing, then selection by one-shot accuracy."""

    def path(self) -> EdgeChoice:
        """Per cell, per node, an op per incoming edge drawn uniformly; a node drawing only ``none``
        draws again (xautodl's ``forward_urs``)."""
        cells = []
        for _ in range(self.net.num_cells):
            ops = [0] * NUM_EDGES
            for j in range(1, 4):
                edges = [e for e, (_, target) in enumerate(EDGES) if target == j]
                while True:
                    draw = torch.randint(NUM_OPS, (len(edges),), generator=self.generator).tolist()
                    if any(op != _NONE for op in draw):
                        break
                for e, op in zip(edges, draw, strict=True):
                    ops[e] = op
            cells.append(tuple(ops))
        return EdgeChoice("one", per_cell=tuple(cells))

    def weight_logits(self, x):
        return self.forward(x, self.path())

    def arch_step(self, base, arch, w_optimizer, a_optimizer):
        with torch.no_grad():
            logits = self.forward(arch[0], self.path())
            return float(self.criterion(logits, arch[1])), accuracy(logits, arch[1])

    def select(self, valid):
        """``candidates`` distinct archs drawn uniformly (``return_topK(K, use_random=True)``)."""
        picked = torch.randperm(NUM_OPS**NUM_EDGES, generator=self.generator)[: self.settings.candidates].tolist()
        candidates = [tuple(int(d) for d in _digits(i)) for i in picked]
        best, score = self._score(candidates, valid, lambda ops, x: self.forward(x, self.one(ops)))
        return self.arch_str(candidates[best]), score

    def eval_logits(self, x, selected):
        return self.forward(x, self.path())

    def distribution(self):
        return [[1.0 / NUM_OPS] * NUM_OPS for _ in range(NUM_EDGES)]  # uniform: RSPS learns no alphas


def _digits(index: int) -> list[int]:
    digits = []
    for _ in range(NUM_EDGES):
        index, d = divmod(index, NUM_OPS)
        digits.append(d)
    return digits[::-1]


def train_controller(controller: Controller, optimizer: torch.optim.Optimizer, batches: Iterator,
                     accuracy_of: Callable[[tuple[int, ...], object], float], settings: Settings,
                     prev_baseline: float | None, generator: torch.Generator) -> tuple[float | None, float | None]:
    """One epoch of NATS-Bench's ENAS controller training (search-cell.py's ``train_controller``), rule for
    rule: REINFORCE on reward = the sampled arch's validation batch accuracy (a fraction) plus
    entropy_weight * entropy, the entropy's gradient kept in the reward; each step's baseline is
    ``prev - (1 - decay) * (prev - reward)`` from the previous epoch's ``prev``, held fixed all epoch (the
    first epoch's is the step's own accuracy); gradients averaged over ``controller_aggregate`` samples
    and clipped to norm 5. Each step takes the next batch, then samples an arch (NATS-Bench's order), and
    ``accuracy_of(ops, batch)`` scores it. Returns (mean reward, mean baseline): the next epoch's baseline."""
    s = settings
    controller.train()
    optimizer.zero_grad()
    rewards, baselines = [], []
    for step in range(s.controller_steps * s.controller_aggregate):
        batch = next(batches)
        log_prob, ent, ops, _ = controller(generator)
        acc = accuracy_of(ops, batch)
        reward = acc + s.controller_entropy_weight * ent
        if prev_baseline is None:
            baseline = torch.tensor(acc, dtype=reward.dtype, device=reward.device)
        else:
            baseline = prev_baseline - (1 - s.controller_baseline_decay) * (prev_baseline - reward)
        loss = -log_prob * (reward - baseline)
        (loss / s.controller_aggregate).backward()
        rewards.append(float(reward))
        baselines.append(float(baseline))
        if (step + 1) % s.controller_aggregate == 0:
            nn.utils.clip_grad_norm_(controller.parameters(), 5.0)
            optimizer.step()
            optimizer.zero_grad()
    if not rewards:
        return None, prev_baseline
    return sum(rewards) / len(rewards), sum(baselines) / len(baselines)


class Enas(CellSearch):
    def _build(self, num_classes, in_channels):
        net = TopologySupernet(num_classes, in_channels, self.settings.channels, self.settings.cells_per_stage)
        self.controller = Controller()
        self.baseline: float | None = None
        return net

    def arch_parameters(self):
        return list(self.controller.parameters())

    def sample(self) -> tuple[int, ...]:
        with torch.no_grad():
            self.controller.eval()
            return self.controller(self.generator)[2]

    def weight_logits(self, x):
        self._last = self.sample()
        return self.forward(x, self.one(self._last))

    def arch_step(self, base, arch, w_optimizer, a_optimizer):
        with torch.no_grad():  # xautodl scores the weight step's arch on the validation batch, no update
            logits = self.forward(arch[0], self.one(self._last))
            return float(self.criterion(logits, arch[1])), accuracy(logits, arch[1])

    def end_epoch(self, valid, a_optimizer):
        """``train_controller`` on the validation batches, the supernet in eval mode."""
        self.net.eval()

        def batch_accuracy(ops: tuple[int, ...], batch: tuple[torch.Tensor, torch.Tensor]) -> float:
            with torch.no_grad():
                return accuracy(self.forward(batch[0], self.one(ops)), batch[1]) / 100

        reward, self.baseline = train_controller(self.controller, a_optimizer, _cycle(valid), batch_accuracy,
                                                 self.settings, self.baseline, self.generator)
        self.net.train()
        return {"controller_reward": reward, "controller_baseline": self.baseline}

    def select(self, valid):
        with torch.no_grad():
            self.controller.eval()
            candidates = [self.controller(self.generator)[2] for _ in range(self.settings.candidates)]
        best, score = self._score(candidates, valid, lambda ops, x: self.forward(x, self.one(ops)))
        return self.arch_str(candidates[best]), score

    def eval_logits(self, x, selected):
        return self.forward(x, EdgeChoice.arch(selected))

    def distribution(self):
        """The controller's per-edge op probabilities along its most likely path."""
        with torch.no_grad():
            return self.controller(greedy=True)[3]

    def genotype(self):
        with torch.no_grad():
            return self.arch_str(self.controller(greedy=True)[2])

    def extra_state(self):
        return {"baseline": self.baseline}

    def load_extra_state(self, state):
        self.baseline = state["baseline"]


# ---- SSS ---------------------------------------------------------------------------------------
class SizeSearch(Search):
    def _build(self, num_classes, in_channels):
        net = SizeSupernet(num_classes, in_channels)
        self.alphas = nn.Parameter(1e-3 * torch.randn(NUM_LAYERS, NUM_CHOICES))
        self.ema_numerator = self.ema_denominator = 0.0
        return net

    def arch_parameters(self):
        return [self.alphas]

    def distribution(self):
        return F.softmax(self.alphas.detach(), dim=-1).double().tolist()

    def genotype(self) -> str:
        return format_sizes(tuple(CHANNELS[int(i)] for i in self.alphas.detach().argmax(-1)))

    def widths(self) -> tuple[list[Width], list[torch.Tensor]]:
        """One sampled width per layer, and the log-probs of the samples (mask_rl's)."""
        widths, log_probs = [], []
        for layer in range(NUM_LAYERS):
            a = self.alphas[layer]
            if self.name == "mask_gumbel":  # torch's gumbel_softmax (soft), its noise from our generator
                g = gumbel(a.shape, self.generator).to(a.device)
                widths.append(Width("mix", (), F.softmax((a + g) / self.tau, dim=-1)))
            elif self.name == "tas":
                widths.append(self._two_widths(a))
            else:
                logp = F.log_softmax(a, dim=-1)
                k = int(torch.multinomial(logp.detach().exp().to("cpu", torch.float64), 1, generator=self.generator))
                widths.append(Width("one", (k,)))
                log_probs.append(logp[k])
        return widths, log_probs

    def _two_widths(self, a: torch.Tensor) -> Width:
        """xautodl's ``select2withP``: Gumbel-perturbed probabilities, two widths drawn from them without
        replacement, their perturbed logits renormalised over the two."""
        while True:
            g = gumbel(a.shape, self.generator).to(a.device)
            logits = (a.log_softmax(dim=-1) + g) / self.tau
            probs = F.softmax(logits, dim=-1)
            if torch.isfinite(g).all() and torch.isfinite(probs).all():
                break
        picked = torch.multinomial(probs.detach().to("cpu", torch.float64) + 1e-7, 2, replacement=False,
                                   generator=self.generator).tolist()
        return Width("tas", tuple(picked), F.softmax(logits[picked], dim=-1))

    def forward(self, x, widths):
        return self.net(x, widths)[1]

    def weight_logits(self, x):
        return self.forward(x, self.widths()[0])

    def arch_step(self, base, arch, w_optimizer, a_optimizer):
        if self.name != "mask_rl":  # tas, mask_gumbel: the validation loss through arch_logits
            return super().arch_step(base, arch, w_optimizer, a_optimizer)
        x, y = arch
        widths, log_probs = self.widths()
        logits = self.forward(x, widths)
        acc = accuracy(logits, y)
        m = self.settings.rl_baseline_momentum  # xautodl's ExponentialMovingAverage (bias-corrected)
        self.ema_numerator = m * self.ema_numerator + (1 - m) * acc
        self.ema_denominator = m * self.ema_denominator + (1 - m)
        advantage = acc - self.ema_numerator / self.ema_denominator
        loss = -advantage * torch.stack(log_probs).sum()
        a_optimizer.zero_grad()
        loss.backward()
        a_optimizer.step()
        return loss.item(), acc

    def arch_logits(self, x):
        return self.forward(x, self.widths()[0])

    def select(self, valid):
        return self.genotype(), None

    def eval_logits(self, x, selected):
        return self.forward(x, self.widths()[0])

    def extra_state(self):
        return {"ema": [self.ema_numerator, self.ema_denominator]}

    def load_extra_state(self, state):
        self.ema_numerator, self.ema_denominator = state["ema"]


_CLASSES = {"darts-v1": Darts, "darts-v2": Darts, "gdas": Gdas, "setn": Setn, "random": RandomSharing,
            "enas": Enas, "tas": SizeSearch, "mask_gumbel": SizeSearch, "mask_rl": SizeSearch}


def make_search(name: str, num_classes: int, in_channels: int, settings: Settings, generator: torch.Generator,
                device: torch.device) -> Search:
    """The algorithm ``name``; its modules' initial weights come from torch's global generator (seed it)."""
    return _CLASSES[name](name, num_classes, in_channels, settings, generator, device)
