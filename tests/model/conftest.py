"""Fixtures for model tests: one tiny backbone per session, models and batches built from it."""
from __future__ import annotations

import pytest
import torch

from umbenet_cli.model import Batch, UMBEnet, UMBEnetConfig, load_backbone
from umbenet_cli.model.config import TINY_BACKBONE

# Every non-empty subset of (video, audio, text).
SUBSETS = [(bool(c & 1), bool(c & 2), bool(c & 4)) for c in range(1, 8)]


@pytest.fixture(scope="session")
def backbone():
    return load_backbone(TINY_BACKBONE)


@pytest.fixture
def make_model(backbone):
    def make(seed: int = 0, **overrides) -> UMBEnet:
        torch.manual_seed(seed)
        return UMBEnet(UMBEnetConfig.preset("tiny", **overrides), backbone=backbone)

    return make


def random_batch(model: UMBEnet, present: list[tuple[bool, bool, bool]], seed: int = 0) -> Batch:
    """A batch of random cached inputs with the given presence rows."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(present), model.config.num_frames
    E = model.backbone.dims.embed_dim
    S = model.audio.num_samples
    frame_mask = torch.ones(B, T, dtype=torch.bool)
    frame_mask[0, T // 2:] = False  # the first clip is shorter than T
    return Batch(
        present=torch.tensor(present, dtype=torch.bool),
        frame_emb=torch.randn(B, T, E, generator=g),
        frame_mask=frame_mask,
        audio=0.3 * torch.randn(B, S, generator=g),
        audio_len=torch.full((B,), S),
        text_emb=torch.randn(B, E, generator=g),
    )
