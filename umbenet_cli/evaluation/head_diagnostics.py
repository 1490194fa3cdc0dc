"""What the classifier compares F_fusion with: the class embeddings' geometry and the logits' range.

UMBEnet's logits are ``scale · cos(F_fusion, e_c)`` (eq. 5). How well they can separate classes is
bounded by the class embeddings e_c (from the frozen CLIP text tower, or learned vectors in the
``classifier=vectors`` ablation) and by the logit scale (CLIP's, frozen):

- ``class_cosine``: pairwise cosine between the C class embeddings of a clip, off the diagonal,
  averaged over clips (``matrix``: the C x C mean). Near 1 means the classes' embeddings point the
  same way: the fused feature can hardly prefer one to another.
- ``logit_range``: ``ceiling_median`` is the largest logit gap a unit F_fusion can open between two
  classes, ``scale · |e_a - e_b|`` (median over class pairs); ``spread_median`` / ``spread_p90`` the
  gap between a clip's highest and lowest logit that the model actually produces. A ceiling of a
  few logits caps the softmax's confidence whatever the encoders learn.
- ``across_clips``: mean cosine between one class's embeddings for different clips (1 when e_c does
  not depend on the clip: no pool; lower when P' moves the class embeddings per clip).

``umbenet eval`` writes these to ``head.json`` beside ``results.json``, for the trained model and for
the model the run started from (built from the run's config and seed), on the same clips with all
the modalities the run was trained on.
"""
from __future__ import annotations

import numpy as np
import torch


class HeadStats:
    """Accumulates the statistics above over batches of ``UMBEnet.head`` outputs."""

    def __init__(self) -> None:
        self.n = 0
        self.cos_sum: torch.Tensor | None = None  # [C, C] sum over clips
        self.dist_sum: torch.Tensor | None = None  # [C, C] sum over clips of |e_a - e_b|
        self.emb_sum: torch.Tensor | None = None  # [C, E] sum over clips of e_c
        self.spreads: list[np.ndarray] = []

    @torch.no_grad()
    def add(self, class_emb: torch.Tensor, logits: torch.Tensor) -> None:
        """class_emb [B or 1, C, E] unit norm, logits [B, C]."""
        B = logits.shape[0]
        e = class_emb.float().expand(B, -1, -1)
        cos = e @ e.transpose(1, 2)  # [B, C, C]
        dist = (2.0 - 2.0 * cos).clamp(min=0).sqrt()
        part = (cos.sum(0).cpu(), dist.sum(0).cpu(), e.sum(0).cpu())
        if self.cos_sum is None:
            self.cos_sum, self.dist_sum, self.emb_sum = part
        else:
            self.cos_sum += part[0]
            self.dist_sum += part[1]
            self.emb_sum += part[2]
        self.n += B
        self.spreads.append((logits.max(1).values - logits.min(1).values).float().cpu().numpy())

    def result(self, logit_scale: float) -> dict:
        if not self.n:
            return {"n_clips": 0}
        C = self.cos_sum.shape[0]
        off = ~torch.eye(C, dtype=torch.bool)
        cos = self.cos_sum / self.n
        dist = self.dist_sum / self.n
        spread = np.concatenate(self.spreads)
        across = (self.emb_sum.norm(dim=-1) ** 2 / self.n ** 2).mean()  # mean over clip pairs, self included
        return {
            "n_clips": self.n,
            "logit_scale": round(float(logit_scale), 4),
            "class_cosine": {"mean": round(float(cos[off].mean()), 4), "min": round(float(cos[off].min()), 4),
                             "max": round(float(cos[off].max()), 4),
                             "matrix": [[round(float(v), 4) for v in row] for row in cos]},
            "logit_range": {"ceiling_median": round(float(logit_scale * dist[off].median()), 4),
                            "spread_median": round(float(np.median(spread)), 4),
                            "spread_p90": round(float(np.percentile(spread, 90)), 4)},
            "across_clips": round(float(across), 4),
        }


@torch.no_grad()
def class_geometry(model, n_queries: int = 16, seed: int = 0) -> dict:
    """The statistics above for a model as it stands (``umbenet info``: as built, before any
    training), without data: F_fusion is replaced by ``n_queries`` random unit vectors, which
    select P' from the pool as clips would. Depends only on the backbone, the classes and the
    head's weights, so it shows what a text tower gives the classifier before training starts."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    fused = torch.nn.functional.normalize(torch.randn(n_queries, model.backbone.dims.embed_dim, generator=gen), dim=-1).to(dev)
    p_prime = None
    if model.pool is not None:
        picked = model.pool(fused, torch.full((n_queries,), 7, device=dev))
        p_prime = model.sff(picked["values"])[0]
    class_emb = model.class_embeddings(p_prime).float()
    scale = float(model.backbone.logit_scale())
    stats = HeadStats()
    stats.add(class_emb, scale * torch.einsum("be,bce->bc", fused, class_emb.expand(n_queries, -1, -1)))
    model.train(was)
    return stats.result(scale)
