"""Sparse Feature Fusion (eq. 10-13): gates in (0, 1) that sparsely mix the top-k prompt values.

``sff.gate = "mlp"`` (the paper, eq. 11-12), one gate per token and channel:

    gate = sigmoid(W2 · ReLU(W1 · x + b1) + b2)                      [B, k, L_p, D_tok]

``sff.gate = "scalar"`` (the authors' released model file), one gate per token:

    gate = sigmoid(W1 · x + b1),  W1: D_tok -> 1                      [B, k, L_p, 1]

Then the k gated values are combined, averaged (``sff.combine = "mean"``, the paper's preset) or
summed (``"sum"``, the authors' code), and eq. 13 penalises W1 in both cases:

    P'   = (1/k) · sum_j gate_j ⊙ v_j   or   sum_j gate_j ⊙ v_j        [B, L_p, D_tok]
    L1   = lambda · sum |W1|

``gate_l1`` (lambda' · mean |gate|) is in neither the paper nor the authors' code; it stays for
runs saved with it, 0 in every preset.
"""
from __future__ import annotations

import torch
from torch import nn

from umbenet_cli.model.config import SFFConfig


class SparseFeatureFusion(nn.Module):
    def __init__(self, token_dim: int, cfg: SFFConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.gate == "scalar":
            self.w1 = nn.Linear(token_dim, 1)
        else:
            self.w1 = nn.Linear(token_dim, cfg.hidden)
            self.w2 = nn.Linear(cfg.hidden, token_dim)

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """values [B, k, L_p, D_tok] -> (P' [B, L_p, D_tok], gates [B, k, L_p, D_tok or 1])."""
        if self.cfg.gate == "scalar":
            gates = torch.sigmoid(self.w1(values))
        else:
            gates = torch.sigmoid(self.w2(torch.relu(self.w1(values))))
        gated = gates * values
        return (gated.sum(dim=1) if self.cfg.combine == "sum" else gated.mean(dim=1)), gates

    def l1_penalty(self) -> torch.Tensor:
        """lambda · sum |W1| (eq. 13), a scalar."""
        return self.cfg.l1_lambda * self.w1.weight.abs().sum()

    def gate_penalty(self, gates: torch.Tensor) -> torch.Tensor:
        """gate_l1 · mean |gate| (kept for runs saved with it; 0 when switched off)."""
        return self.cfg.gate_l1 * gates.abs().mean()
