"""The training protocol: NATS-Bench's hyper-parameters, overridable from params.yaml.

Defaults are read from NATS-Bench's own hyper-opts files (``hyper_opts/``,
copied verbatim), so "the protocol" is their file rather than our memory of it.
A budget ``hp`` names the number of epochs as NATS-Bench does ("01", "12",
"90", "200"). The learning-rate schedule is xautodl's ``CosineAnnealingLR``
exactly (``lr_at``), read from its code rather than from descriptions of it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from typing import Any

from nasforge.errors import InputError
from nasforge.schema import NATS_BUDGETS, epochs_of

# key: (type, lower bound, bound exclusive), as workflow/schemas/params.schema.yaml's train.protocol
# (type, lower bound, bound exclusive, upper bound): the same as params.schema.yaml's protocol entries. The
# two upper bounds are far beyond any published protocol and keep a tampered release's protocols.json (read
# by audit) from asking for 10**9 warm-up epochs or a batch no memory holds; a huge lr only diverges, which
# training records (the tests use one to make a run diverge).
_INF = float("inf")
_OVERRIDE_RULES = {"lr": ((int, float), 0, True, _INF), "eta_min": ((int, float), 0, False, _INF),
                   "warmup": (int, 0, False, 1000), "momentum": ((int, float), 0, False, _INF),
                   "nesterov": (bool, 0, False, None), "weight_decay": ((int, float), 0, False, _INF),
                   "batch_size": (int, 1, False, 65536)}


@dataclass(frozen=True)
class Protocol:
    lr: float = 0.1
    eta_min: float = 0.0
    warmup: int = 0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256

    @classmethod
    def nats(cls, hp: str = "12") -> Protocol:
        """NATS-Bench's protocol as written in its ``{hp}E.config``; only its four budgets have one."""
        if str(hp) not in NATS_BUDGETS:
            raise InputError(f"budget hp {hp!r} has no NATS-Bench hyper-opts; NATS-Bench defines {list(NATS_BUDGETS)} "
                             "(written with their leading zero)")
        name = f"{epochs_of(hp):02d}E.config"  # 01E, 12E, 90E, 200E
        folder = resources.files("nasforge").joinpath("hyper_opts")
        config = _read_nats_config((folder / name).read_text())
        if config["scheduler"] != "cos" or config["optim"] != "SGD" or config["criterion"] != "Softmax":
            raise InputError(f"{name}: nasforge implements SGD + cosine + softmax only, got {config}")
        return cls(
            lr=config["LR"], eta_min=config["eta_min"], warmup=config["warmup"], momentum=config["momentum"],
            nesterov=config["nesterov"], weight_decay=config["decay"], batch_size=config["batch_size"],
        )

    @classmethod
    def weight_sharing(cls) -> Protocol:
        """The supernet weights' SGD of NATS-Bench's weight-sharing searches, from its
        ``configs/nas-benchmark/algos/weight-sharing.config`` (lr 0.025 cosine to 1e-3, batch 64)."""
        config = _read_nats_config(resources.files("nasforge").joinpath("hyper_opts", "weight-sharing.config").read_text())
        return cls(lr=config["LR"], eta_min=config["eta_min"], warmup=config["warmup"], momentum=config["momentum"],
                   nesterov=config["nesterov"], weight_decay=config["decay"], batch_size=config["batch_size"])

    def with_overrides(self, overrides: dict[str, Any] | None) -> Protocol:
        """This protocol with some hyper-parameters replaced; each value is checked for type and range
        (the same rules as params.yaml's ``train.protocol``), so a bad one fails before any training."""
        if not overrides:
            return self
        if not isinstance(overrides, dict):
            raise InputError(f"protocol overrides must be a JSON object such as {{\"batch_size\": 128}}, got {overrides!r}")
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"unknown protocol keys {unknown}: expected some of {sorted(known)}")
        for key, value in overrides.items():
            kind, low, strict, high = _OVERRIDE_RULES[key]
            ok = (isinstance(value, bool) if kind is bool else
                  isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
                  and (value > low if strict else value >= low) and value <= high)
            if not ok:
                allowed = "true or false" if kind is bool else (
                    f"{'an integer' if kind is int else 'a number'} {'>' if strict else '>='} {low}"
                    + (f" and <= {high}" if high != _INF else ""))
                raise InputError(f"protocol {key}={value!r} is not allowed: expected {allowed}")
        return replace(self, **overrides)

    def lr_at(self, epoch: int, iteration: float, epochs: int) -> float:
        """The lr of an iteration, as xautodl's ``CosineAnnealingLR.get_lr`` gives it.

        ``epoch`` counts from 0 over all ``epochs + warmup`` trained epochs and
        ``iteration`` is the fraction of that epoch done (``i / iters``, what
        NATS-Bench passes to ``scheduler.update``). During warm-up the lr rises
        linearly per iteration; after it, epoch e trains at
        ``eta_min + (lr - eta_min) * (1 + cos(pi * (e - warmup) / epochs)) / 2``,
        constant within the epoch (so hp 01 trains at 0.1 throughout); the last
        ``warmup`` epochs (``e >= epochs``) train at ``eta_min``.
        """
        if epoch >= self.warmup and epoch < epochs:
            return self.eta_min + (self.lr - self.eta_min) * (1 + math.cos(math.pi * (epoch - self.warmup) / epochs)) / 2
        if epoch >= epochs:
            return self.eta_min
        return (epoch / self.warmup + iteration / self.warmup) * self.lr

    def total_epochs(self, hp: str) -> int:
        """Epochs a run of budget ``hp`` trains: NATS-Bench's ``epochs + warmup``."""
        return epochs_of(hp) + self.warmup

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trained_epochs(params: dict) -> dict[str, int]:
    """Epochs each budget of a configuration trains (``{hp: epochs + warmup}``), from its protocol."""
    train = params["train"]
    return {hp: Protocol.nats(hp).with_overrides(train["protocol"]).total_epochs(hp) for hp in train["budgets"]}


def _read_nats_config(text: str) -> dict[str, Any]:
    """Parse NATS-Bench's ``{"key": [type, value]}`` files."""
    casts = {"int": int, "float": float, "str": str, "bool": lambda v: bool(int(v))}
    return {key: casts[kind](value) for key, (kind, value) in json.loads(text).items()}
