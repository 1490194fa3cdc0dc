"""AdaptiveFusion (eq. 2-3): self-attention over the modality tokens with the modal mask M.

M is -inf on the keys of missing modalities (``src_key_padding_mask``), a missing modality's
token is zeroed before attention (so even NaN input cannot leak), and the output is the mean
over present modalities only, L2-normalised. A missing modality therefore has no influence at
all on F_fusion.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.model.config import MODALITIES, FusionConfig


class AdaptiveFusion(nn.Module):
    def __init__(self, dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.modality_embed = nn.Parameter(torch.zeros(len(MODALITIES), dim))
        nn.init.normal_(self.modality_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=cfg.heads, dim_feedforward=4 * dim, dropout=cfg.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """tokens [B, M, D] (F_v, F_a, F_t), present [B, M] bool -> F_fusion [B, D], unit norm."""
        # A check that reads the mask back would stall a GPU every forward; batches built on the
        # host (training.data.make_batch, predict) are checked there, CPU tensors here for free.
        if present.device.type == "cpu" and not bool(present.any(dim=1).all()):
            raise ValueError("every clip needs at least one present modality; found a clip with none")
        x = torch.where(present.unsqueeze(-1), tokens, torch.zeros_like(tokens))
        x = x + self.modality_embed
        x = self.encoder(x, src_key_padding_mask=~present)
        w = present.unsqueeze(-1).to(x.dtype)
        return F.normalize((x * w).sum(1) / w.sum(1), dim=-1)
