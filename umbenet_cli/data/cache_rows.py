"""Check one clip's row against the cache contract and convert it to Arrow-ready values.

A row is a dict keyed by column name (see ``cache_schema``). Tensor columns take a numpy array
(any float dtype; stored as little-endian float16) of the exact per-clip shape, or the raw bytes,
or None when the modality is missing. Audio may be shorter than S samples: it is zero padded and
``audio_num_samples`` defaults to its real length. Derived columns are filled in: the presence
flags (features) from which tensors are null, ``status_reason`` "" and ``text_source`` "none"
when there is no text. Every problem of a row is reported at once, naming the clip and field.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from umbenet_cli.data.cache_schema import (
    FLOAT16, INT16_MAX, STATUSES, TEXT_SOURCES, CacheError, CacheSpec, table_schema,
    tensor_shapes,
)

INT32_MAX = 2**31 - 1
_PRESENCE = {"video_present": "frame_emb", "audio_present": "audio", "text_present": "text_emb"}


class RowConverter:
    """Validates rows for one table of one spec; ``__call__(row) -> {column: value}``."""

    def __init__(self, table: str, spec: CacheSpec) -> None:
        self.table = table
        self.spec = spec.for_table(table)
        self.schema: pa.Schema = table_schema(table, self.spec)
        self.shapes = tensor_shapes(table, self.spec)
        self.names = list(self.schema.names)

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        clip = row.get("clip_id")
        problems: list[str] = []
        unknown = sorted(set(row) - set(self.names))
        if unknown:
            problems.append(f"unknown columns {unknown}; {self.table} columns are {self.names}")
        out = {name: row.get(name) for name in self.names}
        for name, shape in self.shapes.items():
            out[name] = self._tensor(name, out[name], shape, problems)
        if out["audio"] is not None and isinstance(out["audio"], tuple):
            out["audio"], real_len = out["audio"]
            if out["audio_num_samples"] is None:
                out["audio_num_samples"] = real_len
        self._defaults(out, problems)
        self._check(out, problems)
        if problems:
            raise CacheError(f"{self.table} row for clip {clip!r}:\n  " + "\n  ".join(problems))
        return out

    def _tensor(self, name: str, value: Any, shape: tuple[int, ...], problems: list[str]) -> Any:
        if value is None:
            return None
        nbytes = 2 * math.prod(shape)
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) != nbytes:
                problems.append(f"{name}: {len(value)} bytes, expected {nbytes} "
                                f"(float16 {list(shape)})")
            return bytes(value)
        try:
            arr = np.asarray(value)
        except Exception as e:  # noqa: BLE001 - e.g. a CUDA tensor
            problems.append(f"{name}: cannot convert {type(value).__name__} to numpy ({e}); "
                            "pass a CPU numpy array")
            return None
        real_len = None
        if name == "audio" and arr.ndim == 1 and arr.shape[0] < shape[0]:
            real_len = arr.shape[0]  # shorter clip: zero pad to S, remember the real length
            arr = np.pad(arr, (0, shape[0] - real_len))
        if arr.shape != shape:
            problems.append(f"{name}: shape {list(arr.shape)}, expected {list(shape)}")
            return None
        if arr.dtype.kind != "f":
            problems.append(f"{name}: dtype {arr.dtype}, expected a float array")
            return None
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            half = np.ascontiguousarray(arr, dtype=FLOAT16)
        bad = int(np.size(half) - np.count_nonzero(np.isfinite(half)))
        if bad:
            problems.append(f"{name}: {bad} values are NaN/inf in float16 (|x| > 65504 "
                            "overflows); fix the stage that produced them (normalise them)")
        data = half.tobytes()
        return (data, real_len if real_len is not None else shape[0]) if name == "audio" else data

    def _defaults(self, out: dict[str, Any], problems: list[str]) -> None:
        has_text = out["text"] is not None if self.table == "media" else out["text_emb"] is not None
        if out["status_reason"] is None:
            out["status_reason"] = ""
        if out["text_source"] is None and not has_text:
            out["text_source"] = "none"
        if out["audio_num_samples"] is None and out["audio"] is None:
            out["audio_num_samples"] = 0
        if self.table == "features":
            for flag, col in _PRESENCE.items():
                present = out[col] is not None
                if out[flag] is None:
                    out[flag] = present
                elif bool(out[flag]) != present:
                    problems.append(f"{flag}={out[flag]!r} but {col} is "
                                    f"{'set' if present else 'null'}; leave {flag} out (it is "
                                    f"derived from {col})")

    def _check(self, out: dict[str, Any], problems: list[str]) -> None:
        spec, t = self.spec, self.spec.num_frames
        for field in self.schema:
            if not field.nullable and out[field.name] is None:
                problems.append(f"{field.name}: missing (required, {field.type})")
        if problems:
            return
        if not isinstance(out["clip_id"], str) or not out["clip_id"]:
            problems.append(f"clip_id={out['clip_id']!r}: must be a non-empty string")
        _int_in(problems, out, "label", 0, len(spec.classes) - 1,
                f"a 0-based index into the {len(spec.classes)} classes")
        if out["fold"] is not None:
            _int_in(problems, out, "fold", 0, 127, "an int8 fold number")
        for name in ("split", "text", "text_language", "status_reason"):
            if out[name] is not None and not isinstance(out[name], str):
                problems.append(f"{name}={out[name]!r}: must be a string")
        _choice(problems, out, "status", STATUSES)
        _choice(problems, out, "text_source", TEXT_SOURCES)
        _int_in(problems, out, "n_source_frames", 0, INT32_MAX, "the real frame count")
        _int_in(problems, out, "n_valid_frames", 0, min(t, INT16_MAX), f"<= num_frames={t}")
        _int_in(problems, out, "audio_num_samples", 0, spec.audio_samples,
                f"<= S={spec.audio_samples} samples")
        ratio = out["face_ratio"]
        if not isinstance(ratio, (int, float, np.floating)) or not 0.0 <= float(ratio) <= 1.0:
            problems.append(f"face_ratio={ratio!r}: must be a number in [0, 1]")
        if self.table == "media":
            for name in ("crops", "scene"):
                if name in out:
                    _jpeg_list(problems, name, out[name], t)
            for col, reason in (("audio", "audio_missing_reason"), ("text", "text_missing_reason")):
                if out[col] is None and not out[reason]:
                    problems.append(f"{col} is null but {reason} is empty: say why it is missing "
                                    "(e.g. 'no audio stream', 'neutral clip has no caption')")
        if (out["audio"] is None) != (out["audio_num_samples"] == 0):
            problems.append(f"audio_num_samples={out['audio_num_samples']!r} but audio is "
                            f"{'null' if out['audio'] is None else 'set'}: 0 exactly when "
                            "there is no audio (a null waveform), else the real length >= 1")
        has_text = out["text"] is not None if self.table == "media" else out["text_emb"] is not None
        if out["text_source"] in TEXT_SOURCES and (out["text_source"] == "none") == has_text:
            what = "text" if self.table == "media" else "text_emb"
            problems.append(f"text_source={out['text_source']!r} but {what} is "
                            f"{'set' if has_text else 'null'}: use 'none' exactly when there is "
                            "no text")


def _int_in(problems: list[str], out: dict[str, Any], name: str, lo: int, hi: int,
            what: str) -> None:
    v = out[name]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        problems.append(f"{name}={v!r}: must be an int in {lo}..{hi} ({what})")
    else:
        out[name] = int(v)


def _choice(problems: list[str], out: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    if out[name] not in choices:
        problems.append(f"{name}={out[name]!r}: must be one of {list(choices)}")


def _jpeg_list(problems: list[str], name: str, value: Any, t: int) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or len(value) != t:
        n = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        problems.append(f"{name}: {n} images, expected a list of num_frames={t} JPEG bytes")
    elif not all(isinstance(v, (bytes, bytearray)) and len(v) > 0 for v in value):
        problems.append(f"{name}: every item must be non-empty JPEG bytes")
