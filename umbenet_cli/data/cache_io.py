"""Public API of the feature cache: write rows with ``PartWriter``, resume with ``done_ids``,
read with ``read_features`` / ``read_media`` / ``iter_media``.

The contract itself (columns, dtypes, spec, version) is in ``cache_schema``. Typical use::

    spec = CacheSpec(dataset="mafw", classes=MAFW_CLASSES, num_frames=16, audio_seconds=10,
                     sample_rate=16000, sampling="uniform", embed_dim=768,
                     backbone="clip-vit-l14", backbone_fingerprint="sha256:...")
    skip = done_ids(features_dir(cache))
    with PartWriter(features_dir(cache), spec, shard="0/4") as w:
        for row in rows_not_in(skip):
            w.write(row)            # {"clip_id": ..., "label": 3, "frame_emb": f32[16, 768], ...}
    ft = read_features(cache)       # ft.frame_emb: float16 [N, 16, 768], ft.presence: [N, 3]
"""
from __future__ import annotations

from umbenet_cli.data.cache_parts import (
    done_ids, features_dir, list_parts, media_dir, parse_shard, remove_tmp_leftovers, table_spec,
)
from umbenet_cli.data.cache_read import (
    FeatureTable, MediaTable, iter_media, read_features, read_media,
)
from umbenet_cli.data.cache_schema import (
    SCHEMA_VERSION, CacheError, CacheSpec, features_schema, media_schema, read_part_info,
)
from umbenet_cli.data.cache_write import PartWriter

__all__ = [
    "SCHEMA_VERSION", "CacheError", "CacheSpec", "FeatureTable", "MediaTable", "PartWriter",
    "done_ids", "features_dir", "features_schema", "iter_media", "list_parts", "media_dir",
    "media_schema", "parse_shard", "read_features", "read_media", "read_part_info",
    "remove_tmp_leftovers", "table_spec",
]
