"""CLIP's byte-pair encoding, read from ``bpe_simple_vocab_16e6.txt.gz`` as the open-clip-torch
wheel ships it (MIT licence), following OpenAI's ``SimpleTokenizer``.

Two users: the tiny backbone writes its tokenizer from this vocabulary (256 byte symbols, the
same with ``</w>``, one entry per merge, then the two special tokens: 49,408 in all), and the
config counts a class prompt's tokens exactly before any backbone is loaded (``clip_tokens``):
every CLIP checkpoint, OpenAI's and LAION's, tokenises with this vocabulary. A backbone with
another tokenizer is checked again, with its own, when the model is built.
"""
from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import re
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # the merges OpenAI's CLIP uses (the file holds more)
# CLIP's pre-tokenizer (its own pattern, with Python's \w classes for \p{L} and \p{N}); byte-pair
# encoding never merges across these pieces.
PIECES = re.compile(r"'(?:s|t|re|ve|m|ll|d)|[^\W\d_]+|\d|(?:[^\w\s]|_)+")


def bpe_file() -> Path:
    spec = importlib.util.find_spec("open_clip")  # locate without importing (no torch/timm import)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open-clip-torch is not installed: `pip install open-clip-torch`")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the open-clip-torch install; reinstall it")
    return path


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
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


@functools.lru_cache(maxsize=1)
def merges() -> tuple[tuple[str, str], ...]:
    lines = gzip.open(bpe_file()).read().decode("utf-8").split("\n")
    return tuple(tuple(line.split()) for line in lines[1 : N_MERGES + 1])  # type: ignore[misc]


def clip_bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary (token -> id) and BPE merges."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges()]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, list(merges())


@functools.lru_cache(maxsize=1)
def _ranks() -> dict[tuple[str, str], int]:
    return {m: i for i, m in enumerate(merges())}


@functools.lru_cache(maxsize=4096)
def _piece_tokens(piece: str) -> int:
    """Tokens of one pre-tokenizer piece: merge the lowest-ranked adjacent pair until none is left."""
    ranks, enc = _ranks(), bytes_to_unicode()
    symbols = "".join(enc[b] for b in piece.encode("utf-8"))
    parts = list(symbols[:-1]) + [symbols[-1] + "</w>"]
    while len(parts) > 1:
        rank, a, b = min((ranks.get(pair, len(ranks)), *pair) for pair in zip(parts, parts[1:]))
        if rank == len(ranks):
            break
        out, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(parts[i])
                i += 1
        parts = out
    return len(parts)


def clip_tokens(text: str) -> int:
    """How many tokens CLIP's tokenizer makes of ``text`` ([SOS] and [EOS] not counted)."""
    text = " ".join(html.unescape(html.unescape(text)).split()).lower()
    return sum(_piece_tokens(p) for p in PIECES.findall(text))
