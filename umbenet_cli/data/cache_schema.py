"""The feature-cache data contract: spec, columns, dtypes and version (the only place they live).

A cache is a folder with two tables, each a folder of Parquet part files::

    <cache>/media/part-*.parquet      backbone-independent: face crops, scene frames, waveform, text
    <cache>/features/part-*.parquet   what training reads: frozen-backbone embeddings + waveform

Every part carries, in its Parquet key-value metadata under the key ``umbenet``, a JSON object::

    {"schema_version": 1, "table": "features", "spec": {...CacheSpec...},
     "tensors": {"frame_emb": {"dtype": "<f2", "shape": [16, 768]}, ...}}

and, where the writer was given them, ``"notes"``: facts about how the part's rows were made that
are no part of the spec (parts with other notes still make one cache), e.g. prep's features parts
``{"embed_device": "cuda:0 (Tesla V100-SXM2-16GB)", "image_tower_precision": "fp32",
"text_tower_precision": "fp32"}`` (``image_tower_precision`` is ``bf16 autocast`` on GPUs with
native bfloat16). So pandas, pyarrow or duckdb can read and decode a cache without this package:
a tensor column is one ``fixed_size_binary`` value per clip holding little-endian float16 in C
order (row-major), e.g. ``np.frombuffer(value, "<f2").reshape(16, 768)``. A missing modality is
a null value, never zeros.

Columns (``*`` = nullable; T = num_frames, D = embed_dim, S = audio_seconds x sample_rate):

media:    clip_id, label int16, fold* int8, split*, status, status_reason, n_source_frames int32,
          n_valid_frames int16, face_ratio float32, crops* list<binary> (T JPEGs),
          [scene* list<binary> (T JPEGs), only when spec.scene], audio* fixed_size_binary(2S),
          audio_num_samples int32, audio_missing_reason*, text*, text_source, text_language*,
          text_missing_reason*
features: clip_id, label int16, fold* int8, split*, status, status_reason, n_source_frames int32,
          n_valid_frames int16, face_ratio float32, audio_num_samples int32, text*, text_source,
          text_language*, video_present bool, audio_present bool, text_present bool,
          frame_emb* fixed_size_binary(2TD), [scene_emb* fixed_size_binary(2TD), when spec.scene],
          audio* fixed_size_binary(2S), text_emb* fixed_size_binary(2D)
"""
from __future__ import annotations

from umbenet_cli.errors import UserError

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = frozenset({1})
METADATA_KEY = b"umbenet"
TABLES = ("media", "features")
STATUSES = ("ok", "partial", "failed")
TEXT_SOURCES = ("annotation", "asr", "none")
FLOAT16 = "<f2"  # little-endian float16: the byte layout of every tensor column
INT16_MAX = 32767


class CacheError(UserError, ValueError):
    """A cache that cannot be read or written as asked; the message names the fix."""


@dataclass(frozen=True)
class CacheSpec:
    """Everything that fixes the shape and meaning of a cache; written into every part file.

    dataset: dataset name (e.g. "mafw"). classes: ordered class names, label i = classes[i].
    num_frames: T, frames sampled per clip. embed_dim: D of the frozen backbone (features only).
    audio_seconds x sample_rate: S, the fixed waveform length in samples (zero padded).
    backbone / backbone_fingerprint: id and weights fingerprint of the frozen backbone (features
    only). scene: whether whole-frame (scene) images/embeddings are stored. sampling: the frame
    sampling rule in words (e.g. "uniform 16 over the clip, last frame repeated when short").
    """

    dataset: str
    classes: tuple[str, ...]
    num_frames: int
    audio_seconds: float
    sample_rate: int
    sampling: str
    scene: bool = False
    embed_dim: int | None = None
    backbone: str | None = None
    backbone_fingerprint: str | None = None

    def __post_init__(self) -> None:
        # Lists from JSON or user code become tuples: the class order is part of the contract.
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))
        problems = []
        if not isinstance(self.dataset, str) or not self.dataset:
            problems.append(f"dataset={self.dataset!r}: give the dataset name, e.g. 'mafw'")
        if (not isinstance(self.classes, tuple) or not self.classes
                or not all(isinstance(c, str) and c for c in self.classes)):
            problems.append(f"classes={self.classes!r}: give a non-empty tuple of class names")
        elif len(set(self.classes)) != len(self.classes):
            problems.append(f"classes={self.classes!r}: class names must be unique")
        if not _is_int(self.num_frames) or not 1 <= self.num_frames <= INT16_MAX:
            problems.append(f"num_frames={self.num_frames!r}: must be an int in 1..{INT16_MAX}")
        if self.embed_dim is not None and (not _is_int(self.embed_dim) or self.embed_dim < 1):
            problems.append(f"embed_dim={self.embed_dim!r}: must be a positive int or None")
        if not _is_int(self.sample_rate) or self.sample_rate < 1:
            problems.append(f"sample_rate={self.sample_rate!r}: must be a positive int (Hz)")
        if not isinstance(self.audio_seconds, (int, float)) or not self.audio_seconds > 0:
            problems.append(f"audio_seconds={self.audio_seconds!r}: must be > 0")
        elif _is_int(self.sample_rate) and self.sample_rate > 0:
            samples = self.audio_seconds * self.sample_rate
            if abs(samples - round(samples)) > 1e-6:
                problems.append(f"audio_seconds={self.audio_seconds!r}: audio_seconds x "
                                f"sample_rate={samples} must be a whole number of samples")
        if not isinstance(self.scene, bool):
            problems.append(f"scene={self.scene!r}: must be True or False")
        if not isinstance(self.sampling, str) or not self.sampling:
            problems.append(f"sampling={self.sampling!r}: describe the frame sampling rule")
        for name in ("backbone", "backbone_fingerprint"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                problems.append(f"{name}={value!r}: must be a non-empty string or None")
        if problems:
            raise CacheError("invalid CacheSpec:\n  " + "\n  ".join(problems))

    @property
    def audio_samples(self) -> int:
        """S: samples per clip waveform (audio_seconds x sample_rate)."""
        return int(round(self.audio_seconds * self.sample_rate))

    def for_table(self, table: str) -> CacheSpec:
        """The spec as stored in ``table``: media is backbone-independent, so its copy has no
        embed_dim/backbone/fingerprint (one media table then serves many backbones)."""
        _check_table(table)
        if table == "media":
            return dataclasses.replace(self, embed_dim=None, backbone=None,
                                       backbone_fingerprint=None)
        missing = [n for n in ("embed_dim", "backbone", "backbone_fingerprint")
                   if getattr(self, n) is None]
        if missing:
            raise CacheError(f"the features table needs {', '.join(missing)} in the CacheSpec "
                             "(set them from the frozen backbone that computes the embeddings)")
        return self

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (classes as a list)."""
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CacheSpec:
        """Inverse of ``to_json``; unknown or missing keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CacheError(f"unknown CacheSpec fields {unknown}; "
                             f"known fields are {sorted(names)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise CacheError(f"incomplete CacheSpec {d}: {e}") from None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise CacheError(f"unknown cache table {table!r}; tables are {list(TABLES)}")


def tensor_shapes(table: str, spec: CacheSpec) -> dict[str, tuple[int, ...]]:
    """Per-clip float16 shape of each fixed_size_binary column of ``table``."""
    spec = spec.for_table(table)
    shapes: dict[str, tuple[int, ...]] = {}
    if table == "features":
        t, d = spec.num_frames, spec.embed_dim
        assert d is not None  # for_table checked it
        shapes["frame_emb"] = (t, d)
        if spec.scene:
            shapes["scene_emb"] = (t, d)
        shapes["audio"] = (spec.audio_samples,)
        shapes["text_emb"] = (d,)
    else:
        shapes["audio"] = (spec.audio_samples,)
    return shapes


def _tensor_type(shape: tuple[int, ...]) -> pa.DataType:
    n = 2
    for s in shape:
        n *= s
    return pa.binary(n)  # fixed_size_binary(n bytes)


_META_HEAD = [
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("label", pa.int16(), nullable=False),
    pa.field("fold", pa.int8()),
    pa.field("split", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("status_reason", pa.string(), nullable=False),
    pa.field("n_source_frames", pa.int32(), nullable=False),
    pa.field("n_valid_frames", pa.int16(), nullable=False),
    pa.field("face_ratio", pa.float32(), nullable=False),
]


def table_schema(table: str, spec: CacheSpec) -> pa.Schema:
    """The Arrow schema of ``table`` ("media" or "features") for ``spec``, with the ``umbenet``
    metadata attached (see the module docstring for the column list)."""
    spec = spec.for_table(table)
    shapes = tensor_shapes(table, spec)
    fields = list(_META_HEAD)
    if table == "media":
        fields.append(pa.field("crops", pa.list_(pa.binary())))
        if spec.scene:
            fields.append(pa.field("scene", pa.list_(pa.binary())))
        fields += [
            pa.field("audio", _tensor_type(shapes["audio"])),
            pa.field("audio_num_samples", pa.int32(), nullable=False),
            pa.field("audio_missing_reason", pa.string()),
            pa.field("text", pa.string()),
            pa.field("text_source", pa.string(), nullable=False),
            pa.field("text_language", pa.string()),
            pa.field("text_missing_reason", pa.string()),
        ]
    else:
        fields += [
            pa.field("audio_num_samples", pa.int32(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("text_source", pa.string(), nullable=False),
            pa.field("text_language", pa.string()),
            pa.field("video_present", pa.bool_(), nullable=False),
            pa.field("audio_present", pa.bool_(), nullable=False),
            pa.field("text_present", pa.bool_(), nullable=False),
        ]
        fields += [pa.field(name, _tensor_type(shape)) for name, shape in shapes.items()]
    meta = {
        "schema_version": SCHEMA_VERSION,
        "table": table,
        "spec": spec.to_json(),
        "tensors": {n: {"dtype": FLOAT16, "shape": list(s)} for n, s in shapes.items()},
    }
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})


def with_notes(schema: pa.Schema, notes: dict[str, Any]) -> pa.Schema:
    """``schema`` whose ``umbenet`` metadata also holds ``notes`` (JSON-able; see the module
    docstring); ``schema`` itself when there are none."""
    if not notes:
        return schema
    meta = json.loads(schema.metadata[METADATA_KEY])
    meta["notes"] = dict(notes)
    return schema.with_metadata({**schema.metadata, METADATA_KEY: json.dumps(meta, sort_keys=True)})


def media_schema(spec: CacheSpec) -> pa.Schema:
    """Arrow schema of the media table."""
    return table_schema("media", spec)


def features_schema(spec: CacheSpec) -> pa.Schema:
    """Arrow schema of the features table."""
    return table_schema("features", spec)


@dataclass(frozen=True)
class PartInfo:
    """What a part file's footer says about it."""

    path: Path
    table: str
    schema_version: int
    spec: CacheSpec
    notes: dict = dataclasses.field(default_factory=dict)  # how the rows were made, see with_notes


def read_part_info(path: str | Path) -> PartInfo:
    """Read the spec and version of one part file (footer only) and check its columns match."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # noqa: BLE001 - any unreadable footer gets the same advice
        raise CacheError(f"cannot read part {path}: {e}; fix: delete it and re-run "
                         "`umbenet prep` (its clips are redone)") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise CacheError(f"{path} is not a umbenet cache part: its Parquet metadata has no "
                         f"{METADATA_KEY.decode()!r} key; fix: remove it from the cache folder")
    meta = json.loads(raw)
    version = meta.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        fix = "upgrade umbenet" if newer else "re-run `umbenet prep` into a new cache folder"
        raise CacheError(f"{path} has cache schema_version={version!r}; this umbenet reads "
                         f"versions {sorted(KNOWN_SCHEMA_VERSIONS)}; fix: {fix}")
    table = meta.get("table")
    _check_table(table)
    try:
        spec = CacheSpec.from_json(meta["spec"])
    except CacheError as e:
        raise CacheError(f"{path}: {e}") from None
    expected = table_schema(table, spec)
    for field in expected:
        idx = schema.get_field_index(field.name)
        got = schema.field(field.name).type if idx >= 0 else None
        if got != field.type:
            raise CacheError(f"{path}: column {field.name!r} is {got} but the {table} schema "
                             f"says {field.type}; fix: delete the part (it was not written by "
                             "umbenet or was rewritten) and re-run `umbenet prep`")
    return PartInfo(path=path, table=table, schema_version=version, spec=spec, notes=meta.get("notes") or {})


def check_same_spec(infos: Iterable[PartInfo]) -> CacheSpec:
    """The one spec all ``infos`` share; CacheError naming differing fields and files if not."""
    infos = list(infos)
    if not infos:
        raise CacheError("no part files to check")
    groups: dict[tuple[str, CacheSpec], list[Path]] = {}
    for info in infos:
        groups.setdefault((info.table, info.spec), []).append(info.path)
    if len(groups) == 1:
        return infos[0].spec
    (table0, spec0), files0 = next(iter(groups.items()))
    lines = []
    for (table, spec), files in list(groups.items())[1:]:
        diffs = [f"table: {table0!r} vs {table!r}"] if table != table0 else spec_diff(spec0, spec)
        lines.append(f"{_files(files0)} vs {_files(files)}: " + "; ".join(diffs))
    folder = infos[0].path.parent
    raise CacheError(f"part files in {folder} were written with different cache specs:\n  "
                     + "\n  ".join(lines) + "\nfix: delete the stale parts (or the whole folder) "
                     "and re-run `umbenet prep`, or write to a new cache folder")


def spec_diff(a: CacheSpec, b: CacheSpec) -> list[str]:
    """``["field: a_value vs b_value", ...]`` for each field where ``a`` and ``b`` differ."""
    return [f"{f.name}: {getattr(a, f.name)!r} vs {getattr(b, f.name)!r}"
            for f in dataclasses.fields(CacheSpec) if getattr(a, f.name) != getattr(b, f.name)]


def _files(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:2])
    return shown + (f" (+{len(paths) - 2} more)" if len(paths) > 2 else "")
