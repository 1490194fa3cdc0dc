"""The contract: spec checks, exact column lists, metadata, versions; readable without umbenet."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cache_factory import make_spec, write_features, write_media

from umbenet_cli.data.cache_io import CacheError, CacheSpec, features_dir, media_dir, read_features
from umbenet_cli.data.cache_schema import (
    METADATA_KEY, SCHEMA_VERSION, features_schema, media_schema, read_part_info,
)

MEDIA_COLUMNS = [
    "clip_id", "label", "fold", "split", "status", "status_reason", "n_source_frames",
    "n_valid_frames", "face_ratio", "crops", "audio", "audio_num_samples", "audio_missing_reason",
    "text", "text_source", "text_language", "text_missing_reason",
]
FEATURE_COLUMNS = [
    "clip_id", "label", "fold", "split", "status", "status_reason", "n_source_frames",
    "n_valid_frames", "face_ratio", "audio_num_samples", "text", "text_source", "text_language",
    "video_present", "audio_present", "text_present", "frame_emb", "audio", "text_emb",
]


def test_column_lists_and_types() -> None:
    spec = make_spec()
    assert media_schema(spec).names == MEDIA_COLUMNS
    assert features_schema(spec).names == FEATURE_COLUMNS
    scene = make_spec(scene=True)
    assert "scene" in media_schema(scene).names and "scene_emb" in features_schema(scene).names
    f = features_schema(spec)
    assert f.field("frame_emb").type == pa.binary(4 * 8 * 2)  # fixed_size_binary(T*D*2)
    assert f.field("audio").type == pa.binary(32 * 2) and f.field("text_emb").type == pa.binary(16)
    assert f.field("label").type == pa.int16() and f.field("fold").type == pa.int8()
    assert not f.field("clip_id").nullable and f.field("frame_emb").nullable
    assert media_schema(spec).field("crops").type == pa.list_(pa.binary())


def test_spec_reports_every_problem_at_once() -> None:
    with pytest.raises(CacheError) as err:
        CacheSpec(dataset="", classes=("a", "a"), num_frames=0, audio_seconds=0.35,
                  sample_rate=10, sampling="uniform")
    msg = str(err.value)
    for field in ("dataset=", "classes=", "num_frames=0", "audio_seconds=0.35"):
        assert field in msg


def test_spec_json_round_trip_keeps_class_order() -> None:
    spec = make_spec(classes=["z", "a", "m"])
    assert spec.classes == ("z", "a", "m")
    assert CacheSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    with pytest.raises(CacheError, match=r"unknown CacheSpec fields \['colour'\]"):
        CacheSpec.from_json({**spec.to_json(), "colour": 1})


def test_features_need_a_backbone() -> None:
    with pytest.raises(CacheError, match="needs embed_dim, backbone"):
        features_schema(make_spec(embed_dim=None, backbone=None))


def test_spec_and_version_in_parquet_metadata(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(4))
    part = next(features_dir(tmp_path).glob("part-*.parquet"))
    meta = json.loads(pq.read_schema(part).metadata[METADATA_KEY])
    assert meta["schema_version"] == SCHEMA_VERSION and meta["table"] == "features"
    assert CacheSpec.from_json(meta["spec"]) == make_spec()
    assert meta["tensors"]["frame_emb"] == {"dtype": "<f2", "shape": [4, 8]}
    assert read_part_info(part).spec == make_spec()


def _rewrite_metadata(part: Path, change) -> None:
    table = pq.read_table(part)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    change(meta)
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)}), part)


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(4))
    part = next(features_dir(tmp_path).glob("part-*.parquet"))
    _rewrite_metadata(part, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(CacheError, match=r"schema_version=2; .* fix: upgrade umbenet"):
        read_features(tmp_path)


def test_foreign_parquet_is_refused(tmp_path: Path) -> None:
    features_dir(tmp_path).mkdir(parents=True)
    part = features_dir(tmp_path) / "part-0-of-1-00000001-0123abcd.parquet"
    pq.write_table(pa.table({"clip_id": ["a"]}), part)
    with pytest.raises(CacheError, match="is not a umbenet cache part"):
        read_features(tmp_path)


_PLAIN_READER = """
import json, sys
import numpy as np, pandas as pd, pyarrow.parquet as pq
table_dir = sys.argv[1]
part = sorted(__import__("glob").glob(table_dir + "/part-*.parquet"))[0]
meta = json.loads(pq.read_schema(part).metadata[b"umbenet"])
shape = meta["tensors"]["frame_emb"]["shape"]
df = pd.read_parquet(table_dir)  # the whole folder, with pandas alone
row = df.dropna(subset=["frame_emb"]).iloc[0]
emb = np.frombuffer(row["frame_emb"], meta["tensors"]["frame_emb"]["dtype"]).reshape(shape)
assert "umbenet_cli" not in sys.modules
print(json.dumps({"rows": len(df), "spec": meta["spec"], "clip": row["clip_id"],
                  "emb": emb.astype(float).tolist(), "columns": list(df.columns)}))
"""


def test_plain_pandas_and_pyarrow_read_the_cache(tmp_path: Path) -> None:
    rows = write_features(tmp_path, make_spec(), range(9), rows_per_part=4)
    write_media(tmp_path, make_spec(), range(9))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_PLAIN_READER),
                          str(features_dir(tmp_path))], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    got = json.loads(out.stdout)
    assert got["rows"] == 9 and got["columns"] == FEATURE_COLUMNS
    assert CacheSpec.from_json(got["spec"]) == make_spec()
    src = next(r for r in rows if r["clip_id"] == got["clip"])
    assert got["emb"] == src["frame_emb"].astype(float).tolist()
    media = pq.read_table(media_dir(tmp_path))  # plain pyarrow, folder as a dataset
    assert media.num_rows == 9 and media.schema.names == MEDIA_COLUMNS
