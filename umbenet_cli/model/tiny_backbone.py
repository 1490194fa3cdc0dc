"""The offline tiny backbone: a small CLIP with random weights and CLIP's real BPE vocabulary.

Tests and the offline demo cannot reach a model hub, so they use this. It is written once to a
local folder (``$UMBENET_HOME/backbones/tiny-random-clip-v1``, default ``~/.cache/umbenet``) in the
same format as a downloaded checkpoint, then loaded by :func:`load_backbone` exactly like one.
Its weights are random (seeded): numbers it produces check the pipeline, nothing more.

The tokenizer is CLIP's own: vocab.json and merges.txt are derived from
``bpe_simple_vocab_16e6.txt.gz`` shipped (MIT licence) in the open-clip-torch wheel, following the
construction of OpenAI's ``SimpleTokenizer``: 256 byte symbols, the same with ``</w>``, one entry
per merge, then the two special tokens (49,408 in all).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = "v1"
N_MERGES = 49152 - 256 - 2  # the merges OpenAI's CLIP uses (the file holds more)


def umbenet_home() -> Path:
    """Root of the toolkit's local caches (``$UMBENET_HOME`` or ``~/.cache/umbenet``)."""
    return Path(os.environ.get("UMBENET_HOME", Path.home() / ".cache" / "umbenet")).expanduser()


def _bpe_file() -> Path:
    spec = importlib.util.find_spec("open_clip")  # locate without importing (no torch/timm import)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open-clip-torch is not installed: `pip install open-clip-torch`")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the open-clip-torch install; reinstall it")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary (token -> id) and BPE merges, derived from open_clip's file."""
    lines = gzip.open(_bpe_file()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges  # type: ignore[return-value]


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
