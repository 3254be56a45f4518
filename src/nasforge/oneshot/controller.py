"""ENAS's controller as NATS-Bench uses it (xautodl ``cell_searchs/generic_model.Controller``).

A two-layer LSTM emits one op per TSS edge in string order; each op's logits are
``tanh_constant * tanh(w_pred(h) / temperature)`` and the chosen op's embedding is the next input.
Sampling draws from a ``torch.Generator`` the caller owns, so a search is reproducible and resumes
exactly; ``log_prob`` scores given archs teacher-forced, in a batch, which is how the tests check
that the sampled log-probabilities are the ones REINFORCE differentiates.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.oneshot.tss_supernet import NUM_EDGES, NUM_OPS


class Controller(nn.Module):
    def __init__(self, lstm_size: int = 32, lstm_layers: int = 2, tanh_constant: float = 2.5,
                 temperature: float = 5.0) -> None:
        super().__init__()
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.input_vars = nn.Parameter(torch.empty(1, 1, lstm_size))
        self.w_lstm = nn.LSTM(input_size=lstm_size, hidden_size=lstm_size, num_layers=lstm_layers)
        self.w_embd = nn.Embedding(NUM_OPS, lstm_size)
        self.w_pred = nn.Linear(lstm_size, NUM_OPS)
        for weight in (self.input_vars, self.w_lstm.weight_hh_l0, self.w_lstm.weight_ih_l0, self.w_embd.weight,
                       self.w_pred.weight):
            nn.init.uniform_(weight, -0.1, 0.1)

    def _logits(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.tanh_constant * torch.tanh(self.w_pred(outputs) / self.temperature)

    def forward(self, generator: torch.Generator | None = None, greedy: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...], list[list[float]]]:
        """Sample one arch: (sum of its ops' log-probs, sum of the per-edge entropies, op indices,
        per-edge op probabilities). ``greedy`` takes each edge's most likely op instead."""
        inputs, hidden = self.input_vars, None
        log_probs, entropies, ops, probs = [], [], [], []
        for _ in range(NUM_EDGES):
            outputs, hidden = self.w_lstm(inputs, hidden)
            logp = F.log_softmax(self._logits(outputs).view(-1), dim=-1)
            p = logp.exp()
            if greedy:
                op = int(p.argmax())
            else:
                op = int(torch.multinomial(p.detach().to("cpu", torch.float64), 1, generator=generator))
            ops.append(op)
            log_probs.append(logp[op])
            entropies.append(-(p * logp).sum())
            probs.append(p.detach().double().tolist())
            inputs = self.w_embd(torch.tensor([[op]], device=logp.device))
        return torch.stack(log_probs).sum(), torch.stack(entropies).sum(), tuple(ops), probs

    def log_prob(self, archs: torch.Tensor) -> torch.Tensor:
        """Log-probability of each row of ``archs`` ((B, edges) op indices), teacher-forced."""
        batch = archs.shape[0]
        inputs = self.input_vars.expand(1, batch, -1)
        hidden = None
        total = torch.zeros(batch, dtype=self.input_vars.dtype, device=archs.device)
        for e in range(NUM_EDGES):
            outputs, hidden = self.w_lstm(inputs, hidden)
            logp = F.log_softmax(self._logits(outputs[0]), dim=-1)
            total = total + logp.gather(1, archs[:, e : e + 1]).squeeze(1)
            inputs = self.w_embd(archs[:, e]).unsqueeze(0)
        return total
