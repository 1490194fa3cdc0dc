"""A plain late-fusion baseline: UMBEnet's own encoders, one linear classifier per modality, and
the mean of the present modalities' logits. No fusion attention, no prompts, no text tower."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.model.audio import AudioEncoder
from umbenet_cli.model.config import UMBEnetConfig
from umbenet_cli.model.text import TextStream
from umbenet_cli.model.visual import TemporalTransformer
from umbenet_cli.evaluation.metrics import confusion_matrix, uar
from umbenet_cli.training.data import Splits, epoch_order, make_batch, step_rng
from umbenet_cli.training.two_stage import sample_presence


class LateFusion(nn.Module):
    def __init__(self, cfg: UMBEnetConfig, dim: int) -> None:
        super().__init__()
        self.visual = TemporalTransformer(dim, cfg.num_frames, cfg.temporal)
        self.audio = AudioEncoder(dim, cfg.audio)
        self.text = TextStream(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, len(cfg.classes)) for _ in range(3))

    def forward(self, b) -> torch.Tensor:
        mask = b.frame_mask & b.present[:, :1]
        feats = [self.visual(b.frame_emb, mask), self.audio(b.audio, b.audio_len), self.text(b.text_emb)]
        logits = torch.stack([h(f) for h, f in zip(self.heads, feats)], 1)  # [B, 3, C]
        w = b.present.float().unsqueeze(-1)
        return (logits * w).sum(1) / w.sum(1)


def train_late_fusion(cfg: UMBEnetConfig, dim: int, table: FeatureTable, splits: Splits, available: np.ndarray,
                      seed: int, epochs: int) -> LateFusion:
    torch.manual_seed(seed)
    model = LateFusion(cfg, dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    B = cfg.optim.batch_size
    best, best_state = -1.0, None
    dev = torch.device("cpu")
    for epoch in range(epochs):
        model.train()
        order = epoch_order(splits.train, seed, 9, epoch)
        for step, rows in enumerate(order[: len(order) // B * B].reshape(-1, B)):
            present = sample_presence(available[rows], "subsets", step_rng(seed, 9, epoch, step + 1))
            b = make_batch(table, rows, present, dev)
            loss = F.cross_entropy(model(b), torch.from_numpy(table.labels[rows].astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        preds = predict(model, table, splits.val, available[splits.val])
        val_uar = uar(confusion_matrix(table.labels[splits.val].astype(np.int64), preds, len(cfg.classes)))
        if val_uar > best:
            best, best_state = val_uar, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model


@torch.no_grad()
def predict(model: LateFusion, table: FeatureTable, rows: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Predicted class per row; -1 where the row has no present modality."""
    model.eval()
    out = np.full(len(rows), -1)
    ok = present.any(1)
    for s in range(0, len(rows), 256):
        sl = slice(s, s + 256)
        keep = ok[sl]
        if keep.any():
            b = make_batch(table, rows[sl][keep], present[sl][keep], torch.device("cpu"))
            out[np.arange(s, min(s + 256, len(rows)))[keep]] = model(b).argmax(1).numpy()
    return out
