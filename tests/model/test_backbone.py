"""Backbone loading: the tiny offline CLIP, the tokenizer guard, the offline failure message."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPTokenizer

from umbenet_cli.model import BackboneError, load_backbone
from umbenet_cli.model.backbone import CLIP_MEAN, check_tokenizer
from umbenet_cli.model.config import DEFAULT_BACKBONE


def test_tiny_backbone_has_clips_real_vocabulary(backbone):
    # Token ids of OpenAI CLIP's tokenizer for these words.
    assert backbone.tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(backbone.tokenizer) == 49408


def test_tiny_backbone_is_frozen_and_deterministic(backbone, tmp_path, monkeypatch):
    from umbenet_cli.model.tiny_backbone import write_tiny_backbone

    assert not any(p.requires_grad for p in backbone.parameters())
    other = load_backbone(str(write_tiny_backbone(tmp_path / "again")))  # same seed, local folder path
    assert other.fingerprint() == backbone.fingerprint()


def test_broken_tokenizer_is_refused_with_a_fix():
    broken = CLIPTokenizer()  # what transformers builds when vocab.json / merges.txt are missing
    with pytest.raises(BackboneError) as err:
        check_tokenizer(broken, "openai/clip-vit-base-patch16", 49408)
    msg = str(err.value)
    assert "openai/clip-vit-base-patch16" in msg and "expected 49408" in msg and "Fix" not in msg[:0]
    assert "huggingface-cli download openai/clip-vit-base-patch16" in msg


def test_offline_hub_id_fails_loudly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError) as err:
        load_backbone(DEFAULT_BACKBONE)
    msg = str(err.value)
    assert DEFAULT_BACKBONE in msg and "Fix:" in msg and "tiny" in msg


def test_preprocess_resizes_crops_and_normalises(backbone):
    s = backbone.dims.image_size
    frames = np.zeros((2, 3, 90, 160, 3), dtype=np.uint8)  # [B, T, H, W, 3], landscape
    x = backbone.preprocess(frames)
    assert x.shape == (2, 3, 3, s, s)
    torch.testing.assert_close(x[0, 0, :, 0, 0], -torch.tensor(CLIP_MEAN) / torch.tensor([0.26862954, 0.26130258, 0.27577711]))
