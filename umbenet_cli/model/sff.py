"""Sparse Feature Fusion (eq. 10-13): gates in (0, 1) that sparsely mix the top-k prompt values.

    gate = sigmoid(W2 · ReLU(W1 · x + b1) + b2)            (eq. 11-12), per token and channel
    P'   = (1/k) · sum_j gate_j ⊙ v_j                       over the k selected values
    L1   = lambda · sum |W1|                                 (eq. 13)

The authors' code also penalises the gate values (mean |gate|); ``gate_l1`` switches that on.
"""
from __future__ import annotations

import torch
from torch import nn

from umbenet_cli.model.config import SFFConfig


class SparseFeatureFusion(nn.Module):
    def __init__(self, token_dim: int, cfg: SFFConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.w1 = nn.Linear(token_dim, cfg.hidden)
        self.w2 = nn.Linear(cfg.hidden, token_dim)

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """values [B, k, L_p, D_tok] -> (P' [B, L_p, D_tok], gates [B, k, L_p, D_tok])."""
        gates = torch.sigmoid(self.w2(torch.relu(self.w1(values))))
        return (gates * values).mean(dim=1), gates

    def l1_penalty(self) -> torch.Tensor:
        """lambda · sum |W1| (eq. 13), a scalar."""
        return self.cfg.l1_lambda * self.w1.weight.abs().sum()

    def gate_penalty(self, gates: torch.Tensor) -> torch.Tensor:
        """gate_l1 · mean |gate| (the authors' extra sparsity term; 0 when switched off)."""
        return self.cfg.gate_l1 * gates.abs().mean()
