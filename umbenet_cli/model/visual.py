"""Visual stream E_v (eq. 1): per-frame CLIP embeddings -> temporal transformer -> F_v."""
from __future__ import annotations

import torch
from torch import nn

from umbenet_cli.model.config import TemporalConfig


class TemporalTransformer(nn.Module):
    """Trainable transformer over T frame embeddings with learned frame positions.

    Frames past a clip's real length are padding: they are masked out of attention and out of the
    mean, so a clip's output does not depend on how much padding it carries.
    """

    def __init__(self, dim: int, num_frames: int, cfg: TemporalConfig) -> None:
        super().__init__()
        self.positions = nn.Parameter(torch.zeros(num_frames, dim))
        nn.init.normal_(self.positions, std=0.02)
        self.scene_mix = nn.Linear(2 * dim, dim) if cfg.scene_stream else None
        layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=cfg.heads, dim_feedforward=int(dim * cfg.mlp_ratio),
            dropout=cfg.dropout, activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False) if cfg.layers else None
        self.norm = nn.LayerNorm(dim)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor,
                scene: torch.Tensor | None = None) -> torch.Tensor:
        """frames [B, T, D] (CLIP image embeddings), frame_mask [B, T] bool (True = real frame),
        scene [B, T, D] or None -> F_v [B, D]."""
        x = frames
        if self.scene_mix is not None:
            if scene is None:
                raise ValueError("the model was configured with temporal.scene_stream=true but the batch has no scene embeddings")
            x = self.scene_mix(torch.cat([x, scene], dim=-1))
        # A clip without any real frame (video missing) keeps frame 0 attendable so attention
        # stays finite; fusion discards its output through the modality mask.
        mask = frame_mask.clone()
        mask[:, 0] |= ~mask.any(dim=1)
        x = x + self.positions[: x.shape[1]]
        if self.encoder is not None:
            x = self.encoder(x, src_key_padding_mask=~mask)
        w = mask.unsqueeze(-1).to(x.dtype)
        return self.norm((x * w).sum(1) / w.sum(1))
