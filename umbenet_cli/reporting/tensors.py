"""Read single tensors from a .safetensors file as numpy arrays, without torch.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
data_offsets), then the raw bytes. Reading by hand lets the report take ``pool.keys`` out of a
checkpoint without loading the rest, and read bfloat16 (which numpy lacks) as float32.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_header(path: Path) -> tuple[dict, int]:
    """(header without __metadata__, byte offset where tensor data starts)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def read_tensor(path: str | Path, name: str) -> np.ndarray | None:
    """Tensor ``name`` of a safetensors file (bfloat16 -> float32), or None if absent."""
    path = Path(path)
    header, start = read_header(path)
    info = header.get(name)
    if info is None:
        return None
    a, b = info["data_offsets"]
    with open(path, "rb") as fh:
        fh.seek(start + a)
        raw = fh.read(b - a)
    if info["dtype"] == "BF16":
        arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
    return arr.reshape(info["shape"]).copy()
