"""Fixture factories for the cache tests: tiny specs and random rows with some modalities missing.

Imported by the other ``test_cache_*`` modules; its own tests check that the factory's rows are
what the writer accepts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from umbenet_cli.data.cache_io import CacheSpec, PartWriter, features_dir, media_dir

JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


def make_spec(**overrides: Any) -> CacheSpec:
    """A small features-ready spec: T=4, D=8, S=32 (2 s at 16 Hz), 3 classes."""
    base = dict(dataset="toy", classes=("anger", "joy", "neutral"), num_frames=4,
                audio_seconds=2.0, sample_rate=16, sampling="uniform 4 over the clip",
                scene=False, embed_dim=8, backbone="tiny-clip", backbone_fingerprint="sha256:00")
    base.update(overrides)
    return CacheSpec(**base)


def feature_row(spec: CacheSpec, i: int, rng: np.random.Generator, *,
                missing: tuple[str, ...] = ()) -> dict[str, Any]:
    """Row of clip ``clip-{i:05d}``; ``missing`` in {"video", "audio", "text"} become nulls."""
    t, d, s = spec.num_frames, spec.embed_dim, spec.audio_samples
    n_audio = int(rng.integers(1, s + 1))
    row: dict[str, Any] = {
        "clip_id": f"clip-{i:05d}", "label": i % len(spec.classes),
        "fold": None if i % 7 == 0 else i % 5, "split": None if i % 11 == 0 else "train",
        "status": "partial" if missing else "ok",
        "status_reason": "; ".join(f"{m}: missing" for m in missing),
        "n_source_frames": 10 + i, "n_valid_frames": min(t, 1 + i % t),
        "face_ratio": float(rng.random()),
        "frame_emb": None if "video" in missing else rng.standard_normal((t, d)).astype(np.float16),
        "audio": None if "audio" in missing else rng.standard_normal(n_audio).astype(np.float32),
        "text_emb": None if "text" in missing else rng.standard_normal(d).astype(np.float16),
        "text": None if "text" in missing else f"caption {i}",
        "text_source": "none" if "text" in missing else "annotation",
        "text_language": None if "text" in missing else "en",
    }
    if spec.scene:
        row["scene_emb"] = None if "video" in missing else rng.standard_normal((t, d))
    return row


def media_row(spec: CacheSpec, i: int, rng: np.random.Generator, *,
              missing: tuple[str, ...] = ()) -> dict[str, Any]:
    """Media row of clip ``clip-{i:05d}`` with fake JPEG bytes."""
    row = feature_row(spec, i, rng, missing=missing)
    for name in ("frame_emb", "scene_emb", "text_emb"):
        row.pop(name, None)
    crops = [JPEG + bytes([k]) for k in range(spec.num_frames)]
    row["crops"] = None if "video" in missing else crops
    if spec.scene:
        row["scene"] = None if "video" in missing else [JPEG] * spec.num_frames
    row["audio_missing_reason"] = "no audio stream" if "audio" in missing else None
    row["text_missing_reason"] = "neutral clip has no caption" if "text" in missing else None
    return row


def missing_for(i: int) -> tuple[str, ...]:
    """A deterministic mix: every 3rd clip lacks audio, every 4th text, every 5th video."""
    return tuple(m for m, k in (("audio", 3), ("text", 4), ("video", 5)) if i % k == 0)


def write_features(cache: Path, spec: CacheSpec, ids: range, seed: int = 0, **writer_kw: Any
                   ) -> list[dict[str, Any]]:
    """Write feature rows for ``ids`` and return them."""
    rng = np.random.default_rng(seed)
    rows = [feature_row(spec, i, rng, missing=missing_for(i)) for i in ids]
    with PartWriter(features_dir(cache), spec, **writer_kw) as w:
        w.write_many(rows)
    return rows


def write_media(cache: Path, spec: CacheSpec, ids: range, seed: int = 0, **writer_kw: Any
                ) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = [media_row(spec, i, rng, missing=missing_for(i)) for i in ids]
    with PartWriter(media_dir(cache), spec, **writer_kw) as w:
        w.write_many(rows)
    return rows


@pytest.mark.parametrize("scene", [False, True])
def test_factory_rows_are_accepted(tmp_path: Path, scene: bool) -> None:
    spec = make_spec(scene=scene)
    write_features(tmp_path, spec, range(12))
    write_media(tmp_path, spec, range(12))
    assert len(list(features_dir(tmp_path).glob("part-*.parquet"))) == 1
    assert len(list(media_dir(tmp_path).glob("part-*.parquet"))) == 1
