"""Prompt Pool (eq. 4, 8-9): learnable keys k_j and prompt values v_j, top-k selection per clip.

The query is each clip's own F_fusion: never a batch statistic, so a clip's prediction does not
depend on which clips share its batch. Scores use a selectable query function (the paper's Fig. 4):

    cosine:  s_j = cos(q, k_j)
    l2:      s_j = -||q - k_j||_2
    l1:      s_j = -||q - k_j||_1

Frequency-balanced selection (training only, as in the authors' code): prompts chosen often are
handicapped by w_j = log(max f / f_j + 1), f the running selection counts (+1, so unused prompts
have a finite weight). Similarities are made non-negative first so that a larger weight always
means "more attractive": cosine (s + 1) * w_j, distances -d / w_j.

Selection counts are kept per modality subset (rows indexed by the subset's bit code, video=1,
audio=2, text=4), so usage per modality can be reported and stage 2 can keep the prompts that
stage 1 activated (``training.two_stage``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.model.config import PoolConfig

N_SUBSETS = 8  # bit codes 0..7 of (video, audio, text) presence


def similarity(query: torch.Tensor, keys: torch.Tensor, fn: str) -> torch.Tensor:
    """query [B, D], keys [N, D] -> scores [B, N], higher = closer."""
    if fn == "cosine":
        return F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T
    if fn == "l2":
        return -torch.cdist(query, keys, p=2)
    if fn == "l1":
        return -torch.cdist(query, keys, p=1)
    raise ValueError(f"query function {fn!r} not found; available = ['cosine', 'l2', 'l1']")


def balance_scores(scores: torch.Tensor, counts: torch.Tensor, fn: str) -> torch.Tensor:
    """Handicap often-selected prompts: scores [B, N], counts [N] -> adjusted scores [B, N]."""
    f = counts.to(scores.dtype) + 1.0
    w = torch.log(f.max() / f + 1.0)
    if fn == "cosine":
        return (scores + 1.0) * w
    return scores / w  # scores are negative distances: dividing by a larger w brings them closer


class PromptPool(nn.Module):
    """N keys [N, D] and values [N, L_p, D_tok]; returns the top-k values for each clip."""

    def __init__(self, key_dim: int, token_dim: int, cfg: PoolConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.keys = nn.Parameter(torch.empty(cfg.size, key_dim))
        self.values = nn.Parameter(torch.empty(cfg.size, cfg.length, token_dim))
        nn.init.uniform_(self.keys, -1.0, 1.0)
        nn.init.normal_(self.values, std=0.02)  # the scale of CLIP's token embeddings
        self.register_buffer("counts", torch.zeros(N_SUBSETS, cfg.size, dtype=torch.long))

    def forward(self, query: torch.Tensor, subset_code: torch.Tensor) -> dict[str, torch.Tensor]:
        """query [B, D] (F_fusion), subset_code [B] long in 1..7 ->
        values [B, k, L_p, D_tok], indices [B, k], key_loss (scalar, mean of 1 - cos), scores [B, N]."""
        scores = similarity(query, self.keys, self.cfg.query)
        rank = scores
        if self.training and self.cfg.balance:
            rank = balance_scores(scores.detach(), self.counts.sum(0), self.cfg.query)
        idx = rank.topk(self.cfg.top_k, dim=-1).indices  # [B, k]
        if self.training:
            with torch.no_grad():
                flat = subset_code[:, None].expand_as(idx) * self.cfg.size + idx
                self.counts.view(-1).index_add_(0, flat.reshape(-1), torch.ones_like(flat.reshape(-1)))
        # Key matching pulls the chosen keys toward the (detached) query; the query is not pulled
        # toward the keys, so the fused feature is shaped by classification alone.
        chosen = self.keys[idx]  # [B, k, D]
        key_loss = (1.0 - F.cosine_similarity(chosen, query.detach().unsqueeze(1), dim=-1)).mean()
        return {"values": self.values[idx], "indices": idx, "key_loss": key_loss, "scores": scores}

    def used(self) -> torch.Tensor:
        """Bool [N]: prompts selected at least once since the counts were last reset."""
        return self.counts.sum(0) > 0
