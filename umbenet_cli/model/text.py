"""Text stream E_t (eq. 1): frozen CLIP text embedding of the clip's caption or transcript,
followed by a trainable projection. The frozen part is what the feature cache stores."""
from __future__ import annotations

import torch
from torch import nn


class TextStream(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, text_emb: torch.Tensor) -> torch.Tensor:
        """text_emb [B, D] (frozen CLIP text embeddings) -> F_t [B, D]."""
        return self.proj(text_emb)
