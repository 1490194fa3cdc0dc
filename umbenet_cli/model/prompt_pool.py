"""Prompt Pool (eq. 4, 8-9): learnable keys k_j and prompt values v_j, top-k selection per clip.

The query is each clip's own F_fusion (``pool.query_scope = "clip"``, the default), so a clip's
prediction does not depend on which clips share its batch. ``query_scope = "batch"`` is what the
authors' released code runs: the batch mean of F_fusion (renormalised) selects one set of k prompts
for the whole batch, every clip gets those k and counts them under its own subset code; a
prediction then depends on the other clips of its batch (and, under several processes, on each
process's share of it). Scores use a selectable query function (the paper's Fig. 4):

    cosine:  s_j = cos(q, k_j)
    l2:      s_j = -||q - k_j||_2
    l1:      s_j = -||q - k_j||_1

Frequency-balanced selection (an option, ``pool.balance``; off in every preset): the paper has no
balancing, and the authors' released code computes its factor once from uniform counts, so it is a
constant there. With the option on, prompts chosen often are handicapped by
w_j = log(max f / f_j + 1), f the running selection counts (+1, so unused prompts have a finite
weight); similarities are made non-negative first so that a larger weight always means "more
attractive": cosine (s + 1) * w_j, distances -d / w_j. Its cost: with running counts every unused
prompt is the most attractive one, so (N 32, k 5, batch 16) every prompt is selected within the
first steps, training selects differently from evaluation, and ``counts`` no longer says which
prompts the queries preferred. So the pool also keeps ``query_counts``: what the query alone would
have selected (top-k without the factor), logged beside ``counts``.

Selection counts are kept per modality subset (rows indexed by the subset's bit code, video=1,
audio=2, text=4), so usage during training can be logged and reported. They do not decide stage
2's transfer: a counting pass of the trained stage-1 model does (``training.two_stage``), since
these running counts also hold the first steps, when keys are still random.

Keys train by default (the key-matching term; top-k itself carries no gradient). In the authors'
code they never change: ``pool.train_keys = false`` freezes them (no gradient, out of the
optimiser, so weight decay does not move them either), with ``pool.key_loss_weight = 0``.

Keys are compared with the query under one function throughout: selection and the key-matching
term use the same query function, and for the distances (L2, L1) keys start on the query's scale
(unit norm, as F_fusion is), so that selection follows the query, not the keys' norms.
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


def key_distance(query: torch.Tensor, chosen: torch.Tensor, fn: str) -> torch.Tensor:
    """query [B, D], chosen keys [B, k, D] -> [B, k] distances under the query function:
    1 - cos for cosine, ||q - k||_2 for L2, ||q - k||_1 for L1 (what selection minimises)."""
    q = query.unsqueeze(1)
    if fn == "cosine":
        return 1.0 - F.cosine_similarity(chosen, q, dim=-1)
    if fn == "l2":
        return (chosen - q).norm(p=2, dim=-1)
    if fn == "l1":
        return (chosen - q).abs().sum(-1)
    raise ValueError(f"query function {fn!r} not found; available = ['cosine', 'l2', 'l1']")


def balance_scores(scores: torch.Tensor, counts: torch.Tensor, fn: str) -> torch.Tensor:
    """Handicap often-selected prompts: scores [B, N], counts [N] -> adjusted scores [B, N]."""
    f = counts.to(scores.dtype) + 1.0
    w = torch.log(f.max() / f + 1.0)
    if fn == "cosine":
        return (scores + 1.0) * w
    return scores / w  # scores are negative distances: dividing by a larger w brings them closer


def batch_query_note(cfg: PoolConfig, batches: str) -> str | None:
    """What a reader of predictions must know when one selection serves a whole batch
    (``query_scope = "batch"``), or None; ``batches`` says how the clips were batched."""
    if not cfg.enabled or cfg.query_scope != "batch":
        return None
    return (f"pool.query_scope=batch (the authors' code): one set of top-{cfg.top_k} prompts is selected per batch "
            f"from the batch mean of F_fusion, so a clip's prediction depends on the other clips of its batch "
            f"({batches})")


class PromptPool(nn.Module):
    """N keys [N, D] and values [N, L_p, D_tok]; returns the top-k values for each clip."""

    def __init__(self, key_dim: int, token_dim: int, cfg: PoolConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.keys = nn.Parameter(torch.empty(cfg.size, key_dim))
        self.values = nn.Parameter(torch.empty(cfg.size, cfg.length, token_dim))
        if cfg.query == "cosine":
            nn.init.uniform_(self.keys, -1.0, 1.0)  # scale-free under cosine
        else:  # distances: random directions at the query's scale (F_fusion has unit norm)
            nn.init.normal_(self.keys)
            with torch.no_grad():
                self.keys.copy_(F.normalize(self.keys, dim=-1))
        nn.init.normal_(self.values, std=0.02)  # the scale of CLIP's token embeddings
        self.keys.requires_grad_(cfg.train_keys)
        # Selections made in training, per modality subset (what the model was given).
        self.register_buffer("counts", torch.zeros(N_SUBSETS, cfg.size, dtype=torch.long))
        if cfg.balance:  # what the query alone chose (top-k without the balancing factor)
            self.register_buffer("query_counts", torch.zeros(N_SUBSETS, cfg.size, dtype=torch.long))

    def forward(self, query: torch.Tensor, subset_code: torch.Tensor) -> dict[str, torch.Tensor]:
        """query [B, D] (F_fusion), subset_code [B] long in 1..7 ->
        values [B, k, L_p, D_tok], indices [B, k], key_loss (scalar, mean of 1 - cos), scores [B, N].
        With ``query_scope = "batch"`` every row of indices and scores is the batch mean's."""
        if self.cfg.query_scope == "batch":
            query = F.normalize(query.mean(0, keepdim=True), dim=-1).expand_as(query)
        # Similarity, balancing and top-k in float32 even under autocast: in bfloat16, 32 keys give
        # only ~20 distinct scores per row and top-k picks among ties.
        with torch.autocast(query.device.type, enabled=False):
            scores = similarity(query.float(), self.keys.float(), self.cfg.query)
            rank = scores
            if self.training and self.cfg.balance:
                rank = balance_scores(scores.detach(), self.counts.sum(0), self.cfg.query)
        idx = rank.topk(self.cfg.top_k, dim=-1).indices  # [B, k]
        if self.training:
            self._count(self.counts, idx, subset_code)
            if self.cfg.balance:
                self._count(self.query_counts, scores.detach().topk(self.cfg.top_k, dim=-1).indices, subset_code)
        # Key matching pulls the chosen keys toward the (detached) query under the query function
        # itself (1 - cos, or the L2 / L1 distance); the query is not pulled toward the keys, so
        # the fused feature is shaped by classification alone.
        key_loss = key_distance(query.detach(), self.keys[idx], self.cfg.query).mean()
        return {"values": self.values[idx], "indices": idx, "key_loss": key_loss, "scores": scores}

    @torch.no_grad()
    def _count(self, buf: torch.Tensor, idx: torch.Tensor, subset_code: torch.Tensor) -> None:
        flat = (subset_code[:, None].expand_as(idx) * self.cfg.size + idx).reshape(-1)
        buf.view(-1).index_add_(0, flat, torch.ones_like(flat))

    def counters(self) -> list[torch.Tensor]:
        """The count buffers training updates (summed across processes by the loop)."""
        return [self.counts, self.query_counts] if self.cfg.balance else [self.counts]
