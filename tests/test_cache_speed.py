"""Read-speed sanity: catches accidental per-row Python loops, not a benchmark (loose bound)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from umbenet_cli.data.cache_io import features_dir, read_features
from umbenet_cli.data.cache_schema import features_schema
from umbenet_cli.data.cache_write import write_options

from test_cache_factory import make_spec


def test_reading_2000_clips_of_16x512_takes_well_under_a_second(tmp_path: Path) -> None:
    spec = make_spec(num_frames=16, embed_dim=512, audio_seconds=0.25, sample_rate=64)
    schema = features_schema(spec)
    n, parts = 2000, 8
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, 16, 512)).astype(np.float16)
    features_dir(tmp_path).mkdir(parents=True)
    # Parts written directly with the writer's options (building 2,000 rows through
    # PartWriter.write would time the writer too); ids shuffled so the reader must reorder.
    ids = rng.permutation(n)
    for k, rows in enumerate(np.array_split(ids, parts)):
        m = len(rows)
        cols = {
            "clip_id": [f"c{i:05d}" for i in rows], "label": np.zeros(m, np.int16),
            "fold": pa.nulls(m, pa.int8()), "split": ["train"] * m, "status": ["ok"] * m,
            "status_reason": [""] * m, "n_source_frames": np.full(m, 16, np.int32),
            "n_valid_frames": np.full(m, 16, np.int16), "face_ratio": np.ones(m, np.float32),
            "audio_num_samples": np.zeros(m, np.int32), "text": pa.nulls(m, pa.string()),
            "text_source": ["none"] * m, "text_language": pa.nulls(m, pa.string()),
            "video_present": np.ones(m, bool), "audio_present": np.zeros(m, bool),
            "text_present": np.zeros(m, bool),
            "frame_emb": pa.FixedSizeBinaryArray.from_buffers(
                schema.field("frame_emb").type, m, [None, pa.py_buffer(emb[rows].tobytes())]),
            "audio": pa.nulls(m, schema.field("audio").type),
            "text_emb": pa.nulls(m, schema.field("text_emb").type),
        }
        table = pa.Table.from_pydict(cols, schema=schema)
        pq.write_table(table, features_dir(tmp_path) / f"part-0-of-1-{k + 1:08d}-0000abcd.parquet",
                       **write_options(schema))
    read_features(tmp_path, columns=["frame_emb"])  # warm the page cache
    start = time.perf_counter()
    ft = read_features(tmp_path, columns=["frame_emb"])
    seconds = time.perf_counter() - start
    assert ft.frame_emb.shape == (n, 16, 512)
    assert np.array_equal(ft.frame_emb, emb)  # ids sort back to 0..n-1
    assert seconds < 1.0, f"read {ft.frame_emb.nbytes / 1e6:.0f} MB in {seconds:.2f} s"
