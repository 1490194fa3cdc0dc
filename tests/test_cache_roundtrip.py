"""Round trips: what PartWriter writes, read_features/read_media/iter_media give back exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_cache_factory import make_spec, media_row, write_features, write_media

from umbenet_cli.data.cache_io import (
    CacheError, PartWriter, features_dir, iter_media, media_dir, read_features, read_media,
)


def _expected_f16(value, shape) -> np.ndarray:
    if value is None:
        return np.zeros(shape, np.float16)
    arr = np.asarray(value).astype(np.float16)
    if arr.shape != shape:  # short audio: zero padded to S
        arr = np.pad(arr, (0, shape[0] - arr.shape[0]))
    return arr


@pytest.mark.parametrize("scene", [False, True])
def test_features_round_trip_exact_with_nulls(tmp_path: Path, scene: bool) -> None:
    spec = make_spec(scene=scene)
    rows = write_features(tmp_path, spec, range(40), rows_per_part=7)
    ft = read_features(tmp_path)
    t, d, s = spec.num_frames, spec.embed_dim, spec.audio_samples
    assert len(ft) == 40 and ft.spec == spec
    assert list(ft.clip_ids) == sorted(r["clip_id"] for r in rows)
    assert ft.frame_emb.shape == (40, t, d) and ft.frame_emb.dtype == np.float16
    assert ft.audio.shape == (40, s) and ft.text_emb.shape == (40, d)
    assert (ft.scene_emb is not None) == scene
    by_id = {r["clip_id"]: r for r in rows}
    for i, cid in enumerate(ft.clip_ids):
        r = by_id[cid]
        assert ft.labels[i] == r["label"] and ft.labels.dtype == np.int16
        assert ft.folds[i] == (-1 if r["fold"] is None else r["fold"])
        assert ft.splits[i] == r["split"] and ft.n_valid_frames[i] == r["n_valid_frames"]
        assert list(ft.presence[i]) == [r["frame_emb"] is not None, r["audio"] is not None,
                                        r["text_emb"] is not None]
        # Bit-exact float16 (null rows read as zeros, flagged absent above).
        for name, shape in (("frame_emb", (t, d)), ("audio", (s,)), ("text_emb", (d,))):
            got = getattr(ft, name)[i]
            assert got.tobytes() == _expected_f16(r[name], shape).tobytes(), (cid, name)
        if scene:
            assert ft.scene_emb[i].tobytes() == _expected_f16(r["scene_emb"], (t, d)).tobytes()
        n_audio = 0 if r["audio"] is None else len(r["audio"])
        assert ft.meta.column("audio_num_samples")[i].as_py() == n_audio
    assert not ft.presence.all() and ft.presence.any()  # the factory mixes missing modalities


def test_single_sorted_part_is_read_without_copy(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(20))  # one part, ids written in sorted order
    ft = read_features(tmp_path)
    # A view over the Arrow buffer, not a copy; null rows still read as zeros.
    assert not ft.frame_emb.flags.owndata and ft.frame_emb.base is not None
    assert ft.presence[:, 0].sum() < 20 and not ft.frame_emb[~ft.presence[:, 0]].any()


def test_columns_subset_and_unknown_column(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(10), rows_per_part=3)
    ft = read_features(tmp_path, columns=["frame_emb"])
    assert ft.frame_emb is not None and ft.audio is None and ft.text_emb is None
    assert ft.presence.shape == (10, 3)
    with pytest.raises(CacheError, match="scene_emb"):
        read_features(tmp_path, columns=["scene_emb"])


def test_take_selects_rows(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(10))
    ft = read_features(tmp_path)
    sub = ft.take(ft.labels == 1)
    assert len(sub) == (ft.labels == 1).sum() == sub.meta.num_rows
    assert np.array_equal(sub.frame_emb, ft.frame_emb[ft.labels == 1])


def test_media_round_trip(tmp_path: Path) -> None:
    spec = make_spec(scene=True)
    rows = write_media(tmp_path, spec, range(25), rows_per_part=4)
    mt = read_media(tmp_path)
    by_id = {r["clip_id"]: r for r in rows}
    assert len(mt) == 25 and mt.spec == spec.for_table("media") and mt.spec.embed_dim is None
    for i, cid in enumerate(mt.clip_ids):
        r = by_id[cid]
        assert mt.crops[i].as_py() == r["crops"]
        assert mt.scene[i].as_py() == r["scene"]
        assert mt.audio_present[i] == (r["audio"] is not None)
        assert mt.audio[i].tobytes() == _expected_f16(r["audio"], (spec.audio_samples,)).tobytes()
        assert mt.meta.column("audio_missing_reason")[i].as_py() == r["audio_missing_reason"]
        assert mt.status[i] == r["status"]
    write_media(tmp_path, spec, range(3, 6), seed=9)  # a redo: iter_media still yields once
    streamed = [c for part in iter_media(tmp_path, columns=["crops"]) for c in part.clip_ids]
    assert sorted(streamed) == sorted(by_id)


def test_media_is_backbone_independent(tmp_path: Path) -> None:
    """One media table serves several backbones: its spec drops the backbone fields."""
    write_media(tmp_path, make_spec(), range(3))
    write_media(tmp_path, make_spec(backbone="other", embed_dim=16), range(3, 6))
    assert len(read_media(tmp_path)) == 6


@pytest.mark.parametrize("change, message", [
    ({"frame_emb": np.zeros((3, 8))}, r"frame_emb: shape \[3, 8\], expected \[4, 8\]"),
    ({"label": 3}, r"label=3: must be an int in 0..2"),
    ({"bogus": 1}, r"unknown columns \['bogus'\]"),
    ({"video_present": False}, r"video_present=False but frame_emb is set"),
    ({"text_emb": np.full(8, 1e6)}, r"text_emb: 8 values are NaN/inf"),
    ({"text_source": "none"}, r"text_source='none' but text_emb is set"),
    ({"audio": np.zeros(33)}, r"audio: shape \[33\], expected \[32\]"),
    ({"status": "done"}, r"status='done': must be one of"),
])
def test_bad_rows_name_the_field(tmp_path: Path, change: dict, message: str) -> None:
    from test_cache_factory import feature_row
    row = feature_row(make_spec(), 1, np.random.default_rng(0))
    row.update(change)
    with PartWriter(features_dir(tmp_path), make_spec()) as w:
        with pytest.raises(CacheError, match=message):
            w.write(row)
    assert not list(features_dir(tmp_path).iterdir())  # nothing written


def test_media_requires_missing_reasons(tmp_path: Path) -> None:
    row = media_row(make_spec(), 3, np.random.default_rng(0), missing=("audio",))
    row["audio_missing_reason"] = None
    with PartWriter(media_dir(tmp_path), make_spec()) as w:
        with pytest.raises(CacheError, match="audio_missing_reason is empty"):
            w.write(row)


def test_write_batch_by_column(tmp_path: Path) -> None:
    spec = make_spec()
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((3, 4, 8)).astype(np.float16)
    with PartWriter(features_dir(tmp_path), spec) as w:
        w.write_batch({"clip_id": ["a", "b", "c"], "label": [0, 1, 2], "status": ["ok"] * 3,
                       "n_source_frames": [9] * 3, "n_valid_frames": [4] * 3,
                       "face_ratio": [1.0] * 3, "frame_emb": emb, "audio": [None] * 3,
                       "text_emb": [None] * 3})
    ft = read_features(tmp_path)
    assert np.array_equal(ft.frame_emb, emb) and not ft.presence[:, 1:].any()
    assert list(ft.meta.column("text_source").to_pylist()) == ["none"] * 3
