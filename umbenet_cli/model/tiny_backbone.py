"""The offline tiny backbone: a small CLIP with random weights and CLIP's real BPE vocabulary.

Tests and the offline demo cannot reach a model hub, so they use this. It is written once to a
local folder (``$UMBENET_HOME/backbones/tiny-random-clip-v1``, default ``~/.cache/umbenet``) in the
same format as a downloaded checkpoint, then loaded by :func:`load_backbone` exactly like one.
Its weights are random (seeded): numbers it produces check the pipeline, nothing more.

The tokenizer is CLIP's own: vocab.json and merges.txt are written from the vocabulary
``model.clip_bpe`` reads from the open-clip-torch wheel.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from umbenet_cli.model.clip_bpe import clip_bpe_vocab

TINY_VERSION = "v1"


def umbenet_home() -> Path:
    """Root of the toolkit's local caches (``$UMBENET_HOME`` or ``~/.cache/umbenet``)."""
    return Path(os.environ.get("UMBENET_HOME", Path.home() / ".cache" / "umbenet")).expanduser()


def tiny_clip_config():
    """A CLIP config small enough to build and run in milliseconds on a CPU."""
    from transformers import CLIPConfig

    text = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=49406,
                eos_token_id=49407, pad_token_id=49407)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)


def write_tiny_backbone(folder: Path, seed: int = 0) -> Path:
    """Write the tiny random CLIP (weights, config, tokenizer) to ``folder`` like a real checkpoint."""
    import torch
    from transformers import CLIPModel, CLIPTokenizer

    vocab, merges = clip_bpe_vocab()
    torch.manual_seed(seed)
    model = CLIPModel(tiny_clip_config())
    model.save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)
    (folder / "UMBENET_TINY.json").write_text(json.dumps(
        {"what": "random-weight tiny CLIP for tests and the offline demo", "seed": seed,
         "version": TINY_VERSION}))
    return folder


def ensure_tiny_backbone() -> Path:
    """The tiny backbone's folder, written atomically on first use."""
    target = umbenet_home() / "backbones" / f"tiny-random-clip-{TINY_VERSION}"
    if (target / "UMBENET_TINY.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        write_tiny_backbone(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "UMBENET_TINY.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
