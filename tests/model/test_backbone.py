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
    assert "`hf download openai/clip-vit-base-patch16" in msg and "--set backbone=/path/to/clip" in msg


def test_offline_hub_id_fails_loudly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError) as err:
        load_backbone(DEFAULT_BACKBONE)
    msg = str(err.value)
    assert DEFAULT_BACKBONE in msg and "Fix:" in msg and "tiny" in msg
    assert f"`hf download {DEFAULT_BACKBONE}" in msg and "--set backbone=/path/to/clip" in msg
    assert "huggingface-cli" not in msg  # huggingface_hub >= 1 installs only `hf`


@pytest.mark.parametrize("name", ["/nonexistent/clip", "./clip-copy", "~/no/such/clip", "models/openai/clip"])
def test_a_local_path_that_is_not_there_says_no_such_folder(name):
    with pytest.raises(BackboneError) as err:
        load_backbone(name)
    assert "no such folder" in str(err.value) and "Repo id" not in str(err.value)


def test_unreachable_hub_fails_at_once_without_retries(tmp_path):
    """Not in offline mode, but the hub does not answer: one connection attempt, then the message
    (huggingface_hub's own retries took ~40 s). The endpoint is a closed local port."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9",
               HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli.cli", "info", "--preset", "paper"],
                          capture_output=True, text=True, env=env, timeout=300)
    # Only the weights are missing: info shows the configuration and says so in a note, exit 0.
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "127.0.0.1 cannot be reached" in proc.stderr and "hf download openai/clip-vit-large-patch14" in proc.stderr
    assert "Retry" not in proc.stderr and "Traceback" not in proc.stderr
    assert '"pool"' in proc.stdout  # info still shows the configuration, without the weights
    # Table 4's length and its parts, known before any backbone is loaded
    assert "prompt length 64 = 32 pool + 32 inherent" in proc.stdout


def test_unreachable_hub_is_one_quick_attempt(tmp_path, monkeypatch):
    """The time of the failure itself (the subprocess above also pays for importing torch)."""
    import time

    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    t0 = time.perf_counter()
    with pytest.raises(BackboneError, match="127.0.0.1 cannot be reached"):
        load_backbone("openai/clip-vit-large-patch14")
    assert time.perf_counter() - t0 < 5


def test_a_local_copy_of_the_caches_backbone_fits_it(tmp_path):
    """Caches and checkpoints are matched on the weights fingerprint; the id is a label."""
    from umbenet_cli.data.cache_fit import check_backbone
    from umbenet_cli.data.cache_schema import CacheSpec
    from umbenet_cli.model.tiny_backbone import write_tiny_backbone
    from umbenet_cli.training.options import TrainError

    copy = load_backbone(str(write_tiny_backbone(tmp_path / "copy")))
    spec = CacheSpec(dataset="d", classes=("a", "b"), num_frames=4, audio_seconds=2.0, sample_rate=16000,
                     sampling="uniform", embed_dim=copy.dims.embed_dim, backbone="umbenet/tiny-random-clip",
                     backbone_fingerprint=copy.fingerprint())
    check_backbone(spec, str(tmp_path / "copy"), copy.fingerprint(), TrainError)  # other id, same weights
    with pytest.raises(TrainError, match="other weights"):
        check_backbone(spec, "openai/clip-vit-base-patch16", "0123456789abcdef", TrainError)


def test_preprocess_resizes_crops_and_normalises(backbone):
    s = backbone.dims.image_size
    frames = np.zeros((2, 3, 90, 160, 3), dtype=np.uint8)  # [B, T, H, W, 3], landscape
    x = backbone.preprocess(frames)
    assert x.shape == (2, 3, 3, s, s)
    torch.testing.assert_close(x[0, 0, :, 0, 0], -torch.tensor(CLIP_MEAN) / torch.tensor([0.26862954, 0.26130258, 0.27577711]))
