"""``--exclude-classes`` on a cache on disk: the excluded clips are never read, so the table holds
the kept clips once (not the whole table and a copy of its kept rows)."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from test_cache_factory import make_spec, write_features
from umbenet_cli.data.cache_read import read_features
from umbenet_cli.data.class_subset import ClassSelectionError, exclude_classes, read_without_classes

TENSORS = ("frame_emb", "audio", "text_emb")


def assert_same_table(a, b) -> None:
    assert a.spec == b.spec and list(a.clip_ids) == list(b.clip_ids)
    for name in ("labels", "folds", "n_valid_frames", "audio_num_samples", "presence", *TENSORS):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert list(a.splits) == list(b.splits) and a.meta.equals(b.meta)


def test_same_table_as_filtering_after_the_read(tmp_path: Path) -> None:
    """Several shards, and a resumed shard that rewrote some clips (the newest copy wins)."""
    spec = make_spec(classes=("anger", "joy", "neutral", "sadness"))
    write_features(tmp_path, spec, range(0, 40), shard="0/2", rows_per_part=7)
    write_features(tmp_path, spec, range(40, 80), shard="1/2", rows_per_part=9)
    write_features(tmp_path, spec, range(30, 50), seed=1, shard="1/2", rows_per_part=6)  # rewritten
    full = read_features(tmp_path)
    assert len(full) == 80
    for exclude in (["neutral"], ["ANGER"], ["joy", "neutral"]):  # names match case-insensitively
        got = read_without_classes(tmp_path, exclude)
        assert_same_table(got, exclude_classes(full, exclude))
        assert not {x.lower() for x in exclude} & set(got.spec.classes) and 0 < len(got) < len(full)
    assert_same_table(read_without_classes(tmp_path, []), full)
    with pytest.raises(ClassSelectionError, match="not among the cache's classes"):
        read_without_classes(tmp_path, ["contempt"])


def traced_peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_the_kept_clips_alone(tmp_path: Path) -> None:
    """~25 MB of float16 audio and frames in 4 parts (MAFW's ~2.3 GB scaled down): leaving one of
    three classes out peaks at the kept clips' arrays (2/3 of it) plus the metadata, where reading
    the table and then taking its rows peaked at the whole table plus the copy (5/3)."""
    spec = make_spec(audio_seconds=2.0, sample_rate=16000, embed_dim=64)  # 64 KB of audio per clip
    write_features(tmp_path, spec, range(360), rows_per_part=100)
    per_clip = 2 * (spec.audio_samples + spec.num_frames * spec.embed_dim + spec.embed_dim)
    whole = 360 * per_clip

    table, peak = traced_peak(lambda: read_without_classes(tmp_path, ["neutral"]))
    kept = sum(getattr(table, n).nbytes for n in TENSORS)
    assert len(table) == 240 and kept == 240 * per_clip
    assert peak < kept + 2_000_000, (peak, kept)  # the kept arrays and a little metadata
    del table
    # The way it was (the measurement can tell): the whole table, then a copy of its kept rows.
    _, before = traced_peak(lambda: exclude_classes(read_features(tmp_path), ["neutral"]))
    assert before > whole + kept * 0.9, (before, whole)
