"""Read a cache table into numpy: deduplicated (newest part wins), sorted by clip_id.

Rows come back sorted by clip_id, so the same clips give the same arrays however the cache was
sharded or resumed. Each part is opened once (its spec checked, its footer parsed and its clip ids
read, for the row plan), then read once by a worker of a thread pool: its metadata (and JPEG
list) columns through Arrow, memory-mapped with the footer already parsed, and its tensor
columns straight from the file into the preallocated result rows (``preadv``: one copy, as
``numpy.load`` does; PartWriter stores them PLAIN and uncompressed, and a part stored otherwise is
decoded by Arrow and copied). When the table is one part already in order with no duplicates the
tensors are instead views over Arrow's decoded buffers (no second copy). Peak memory: the result
and the metadata, plus a decoded part per reader thread where Arrow decodes. Each part costs a
few footer parses and a metadata read (~1-2 ms), so fewer, larger parts read faster. A null
(missing modality) reads as zeros and its presence flag is False; use the flag, never the zeros.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Collection, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from umbenet_cli.data.cache_parts import (
    PartName, RowPlan, parallel_map, features_dir, list_parts, media_dir, plan_rows,
)
from umbenet_cli.data.parquet_pages import NotPlain, Page, plain_pages, scatter_pages
from umbenet_cli.data.cache_schema import (
    FLOAT16, CacheError, CacheSpec, PartInfo, check_same_spec, read_part_info, table_schema,
    tensor_shapes,
)

log = logging.getLogger(__name__)

_LIST_COLUMNS = ("crops", "scene")


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """The features table in memory; N clips, row i of every array is clip ``clip_ids[i]``.

    frame_emb / scene_emb: float16 [N, T, D]; audio: float16 [N, S]; text_emb: float16 [N, D]
    (None when not loaded, or scene_emb when the cache has no scene stream). labels: int16 [N],
    0-based into ``spec.classes``; folds: int8 [N], -1 where null; splits: object [N] (str/None);
    presence: bool [N, 3], columns (video, audio, text); n_valid_frames: int16 [N] (frames
    before padding, for the temporal padding mask); audio_num_samples: int32 [N] (real waveform
    length, 0 when audio is missing); meta: every non-tensor column (Arrow).
    """

    spec: CacheSpec
    clip_ids: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    splits: np.ndarray
    n_valid_frames: np.ndarray
    audio_num_samples: np.ndarray
    presence: np.ndarray
    frame_emb: np.ndarray | None
    scene_emb: np.ndarray | None
    audio: np.ndarray | None
    text_emb: np.ndarray | None
    meta: pa.Table

    def __len__(self) -> int:
        return len(self.clip_ids)

    def take(self, index: np.ndarray | Sequence[int]) -> FeatureTable:
        """Rows ``index`` (ints or a bool mask) as a new FeatureTable (copies)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.nonzero(index)[0]
        return _take(self, index)


@dataclass(frozen=True, eq=False)
class MediaTable:
    """The media table (or one part of it) in memory; N clips.

    audio: float16 [N, S] (zeros where null); audio_present: bool [N]; crops / scene: Arrow
    list<binary> arrays of T JPEGs per clip (None when not loaded); labels, folds, splits as in
    FeatureTable, also n_valid_frames and audio_num_samples; status: object [N]; meta: every
    column but audio/crops/scene (Arrow).
    """

    spec: CacheSpec
    clip_ids: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    splits: np.ndarray
    n_valid_frames: np.ndarray
    audio_num_samples: np.ndarray
    status: np.ndarray
    audio: np.ndarray | None
    audio_present: np.ndarray
    crops: pa.ChunkedArray | None
    scene: pa.ChunkedArray | None
    meta: pa.Table

    def __len__(self) -> int:
        return len(self.clip_ids)


def read_features(cache_dir: str | Path, columns: Sequence[str] | None = None,
                  labels: Collection[int] | None = None) -> FeatureTable:
    """Read ``<cache_dir>/features``. ``columns``: the tensor columns to load (default all of
    frame_emb, scene_emb, audio, text_emb); metadata columns are always loaded. ``labels``: only
    the clips of these labels (default all); the other rows are never read, so the table holds
    the kept clips alone (``take`` on a whole table would hold both it and the copy)."""
    table_dir = features_dir(cache_dir)
    parts, spec = _open(table_dir, "features")
    plan = None if labels is None else _only_labels(parts, labels)
    meta, tensors, _ = _read_parts(parts, spec, "features", columns, plan=plan)
    return _feature_table(spec, meta, tensors)


def _only_labels(parts: list[_Part], labels: Collection[int]) -> RowPlan:
    """The row plan (dedup + clip order) restricted to the rows whose label is in ``labels``;
    output rows renumbered 0..n-1 in the same clip order."""
    plan = plan_rows([p.ids for p in parts])
    wanted = np.asarray(sorted(labels), dtype=np.int64)
    src, dest = [], []
    for part, s, d in zip(parts, plan.src, plan.dest):
        part_labels = pq.ParquetFile(part.name.path, metadata=part.metadata).read(
            columns=["label"], use_threads=False).column(0).to_numpy()
        keep = np.isin(part_labels[s], wanted)
        src.append(s[keep])
        dest.append(d[keep])
    kept_rows = np.sort(np.concatenate(dest)) if dest else np.zeros(0, np.int64)
    dest = [np.searchsorted(kept_rows, d) for d in dest]  # old output row -> its rank among the kept
    return RowPlan(n=len(kept_rows), src=src, dest=dest, kept=[np.sort(s) for s in src])


def read_media(cache_dir: str | Path, columns: Sequence[str] | None = None) -> MediaTable:
    """Read all of ``<cache_dir>/media`` (``columns``: which of audio/crops/scene to load,
    default all). For large media tables prefer ``iter_media``."""
    parts, spec = _open(media_dir(cache_dir), "media")
    meta, tensors, lists = _read_parts(parts, spec, "media", columns)
    return _media_table(spec, meta, tensors, lists)


def iter_media(cache_dir: str | Path, columns: Sequence[str] | None = None
               ) -> Iterator[MediaTable]:
    """Stream the media table one part at a time (oldest part first, rows in file order),
    skipping rows that a newer part supersedes: each clip is yielded exactly once."""
    parts, spec = _open(media_dir(cache_dir), "media")
    _columns("media", spec, columns)  # fail early on unknown columns
    plan = plan_rows([p.ids for p in parts])
    for k, part in enumerate(parts):
        rows = plan.kept[k]
        if len(rows):
            one = RowPlan(n=len(rows), src=[rows], dest=[np.arange(len(rows))], kept=[rows])
            meta, tensors, lists = _read_parts([part], spec, "media", columns, plan=one)
            yield _media_table(spec, meta, tensors, lists)


@dataclass(frozen=True, eq=False)
class _Part:
    """A part as ``_open`` left it: its name, its footer (reused when the part is read, so it is
    parsed once) and its clip_id column (for the row plan)."""

    name: PartName
    metadata: pq.FileMetaData
    ids: pa.ChunkedArray


def _open(table_dir: Path, table: str) -> tuple[list[_Part], CacheSpec]:
    """Check every part's spec and read its footer and clip ids, one pass per part."""
    names = list_parts(table_dir)
    if not names:
        raise CacheError(f"no part files in {table_dir}: run `umbenet prep ...` first "
                         f"(it writes {table_dir.name}/part-*.parquet)")

    def open_one(name: PartName) -> tuple[PartInfo, _Part]:
        info = read_part_info(name.path)
        f = pq.ParquetFile(name.path, memory_map=True)
        ids = f.read(columns=["clip_id"], use_threads=False).column(0)
        return info, _Part(name=name, metadata=f.metadata, ids=ids)

    opened = parallel_map(open_one, names)
    for info, _ in opened:
        if info.table != table:
            raise CacheError(f"{info.path} is a {info.table!r} part inside the {table!r} folder; "
                             "fix: move or delete it")
    return [part for _, part in opened], check_same_spec(info for info, _ in opened)


def _columns(table: str, spec: CacheSpec, columns: Sequence[str] | None
             ) -> tuple[list[str], list[str]]:
    """(light columns, heavy columns to load) for a ``columns`` request."""
    names = table_schema(table, spec).names
    heavy_all = [n for n in names if n in tensor_shapes(table, spec) or n in _LIST_COLUMNS]
    light = [n for n in names if n not in heavy_all]
    if columns is None:
        return light, heavy_all
    if isinstance(columns, str):
        columns = [columns]
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise CacheError(f"columns {unknown} are not in this {table} table; its columns are "
                         f"{names} (scene columns exist only when the spec has scene=True)")
    return light, [n for n in heavy_all if n in columns]


def _read_parts(parts: list[_Part], spec: CacheSpec, table: str,
                columns: Sequence[str] | None, plan: RowPlan | None = None
                ) -> tuple[pa.Table, dict[str, np.ndarray], dict[str, pa.ChunkedArray]]:
    """Read the rows ``plan`` keeps (default: dedup + clip order), each part by one worker."""
    light, heavy = _columns(table, spec, columns)
    if plan is None:
        plan = plan_rows([p.ids for p in parts])
    shapes = {n: s for n, s in tensor_shapes(table, spec).items() if n in heavy}
    list_cols = [n for n in heavy if n in _LIST_COLUMNS]
    # One part already in clip order with no duplicates: the tensors are views over the
    # freshly decoded Arrow buffers, no copy at all.
    identity = (len(parts) == 1 and _is_range(plan.src[0], 0, parts[0].metadata.num_rows)
                and _is_range(plan.dest[0], 0, plan.n))
    tensors: dict[str, np.ndarray] = {}
    if not identity:
        tensors = {n: np.empty((plan.n, *s), dtype=FLOAT16) for n, s in shapes.items()}

    def load(k: int) -> pa.Table | None:
        if not len(plan.src[k]):
            return None
        return _read_part(parts[k], light + list_cols, shapes, plan.src[k], plan.dest[k],
                          tensors, identity)

    pieces = [p for p in parallel_map(load, range(len(parts))) if p is not None]
    schema = table_schema(table, spec)
    if pieces:
        both = pa.concat_tables(pieces)
        dest = both.column("__dest").to_numpy()
        if not _is_range(dest, 0, plan.n):  # put the rows in clip order
            order = np.empty(plan.n, np.int64)
            order[dest] = np.arange(plan.n)
            both = both.take(pa.array(order))
        both = both.drop_columns(["__dest"])
    else:
        both = pa.schema([schema.field(n) for n in light + list_cols],
                         metadata=schema.metadata).empty_table()
    meta = both.select(light)
    lists = {n: both.column(n) for n in list_cols}
    return meta, tensors, lists


def _read_part(part: _Part, arrow_cols: list[str], shapes: dict[str, tuple[int, ...]],
               src: np.ndarray, dest: np.ndarray, tensors: dict[str, np.ndarray],
               identity: bool) -> pa.Table:
    """Read one part, memory-mapped once with its footer already parsed: rows ``src`` of its
    tensor columns go to rows ``dest`` of ``tensors`` (filled in place; set to views when
    ``identity``), and rows ``src`` of ``arrow_cols`` come back with a ``__dest`` column.

    Tensor columns stored PLAIN and uncompressed (as PartWriter writes them) are read from the
    file straight into the result rows: one copy, as ``numpy.load`` does. Any other storage, and
    the zero-copy ``identity`` case, goes through Arrow's decoder."""
    mapped = pa.memory_map(str(part.name.path))
    try:
        raw: dict[str, list[Page]] = {}
        if not identity:  # only the page headers and levels of the mapping are touched
            file_bytes = memoryview(mapped.read_buffer(mapped.size()))
            for name, shape in shapes.items():
                try:
                    raw[name] = plain_pages(file_bytes, part.metadata, name,
                                             2 * int(np.prod(shape)))
                except NotPlain as e:
                    log.debug("%s: %s; read through Arrow", part.name.path, e)
            del file_bytes
        decoded = [n for n in shapes if n not in raw]
        data = pq.ParquetFile(mapped, metadata=part.metadata).read(
            columns=arrow_cols + decoded, use_threads=False)
        for name, pages in raw.items():
            scatter_pages(mapped.fileno(), pages, src, dest, tensors[name])
        for name in decoded:
            col, shape = data.column(name), shapes[name]
            if identity and col.num_chunks == 1:
                tensors[name] = _zero_nulls(*_fsb_view(col.chunk(0), shape))
            else:
                if identity:
                    tensors[name] = np.empty((len(dest), *shape), dtype=FLOAT16)
                _scatter(col, shape, src, dest, tensors[name])
    finally:
        mapped.close()  # the mapping itself lives on while Arrow buffers point into it
    keep = data.select(arrow_cols)
    if not _is_range(src, 0, data.num_rows):
        keep = keep.take(pa.array(src))
    return keep.append_column("__dest", pa.array(dest))


def _is_range(a: np.ndarray, lo: int, n: int) -> bool:
    return len(a) == n and (n == 0 or (a[0] == lo and a[-1] == lo + n - 1
                                       and bool(np.all(np.diff(a) == 1))))


def _fsb_view(arr: pa.Array, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(float16 view [len, *shape] over the Arrow buffer, null mask [len]): no copy."""
    n = len(arr)
    per_row = int(np.prod(shape))
    if n == 0:
        return np.zeros((0, *shape), FLOAT16), np.zeros(0, bool)
    buf = arr.buffers()[1]
    data = np.frombuffer(buf, dtype=FLOAT16, count=(arr.offset + n) * per_row)
    view = data[arr.offset * per_row:].reshape(n, *shape)
    nulls = (np.zeros(n, bool) if arr.null_count == 0
             else ~arr.is_valid().to_numpy(zero_copy_only=False))
    return view, nulls


def _zero_nulls(view: np.ndarray, nulls: np.ndarray) -> np.ndarray:
    """``view`` with null rows set to zeros. Parquet decoding leaves stale bytes in null slots;
    the buffer is ours alone (just decoded), so it is zeroed in place when writable (a
    read-only buffer, e.g. one mapped from the file, is copied first)."""
    if nulls.any():
        if not view.flags.writeable:
            view = view.copy()
        view[nulls] = 0
    return view


_ROWS_AT_ONCE = 256  # rows per gather when neither side is contiguous (bounds the temporary)


def _scatter(col: pa.ChunkedArray, shape: tuple[int, ...], src: np.ndarray, dest: np.ndarray,
             out: np.ndarray) -> None:
    """``out[dest] = col[src]`` (as float16 [*, *shape]; null rows become zeros), one copy of
    the bytes: each Arrow chunk is viewed in place, contiguous runs are sliced."""
    lo = 0
    for chunk in col.chunks:
        n = len(chunk)
        if col.num_chunks == 1:
            s, d = src, dest
        else:
            sel = (src >= lo) & (src < lo + n)
            s, d = src[sel] - lo, dest[sel]
        lo += n
        if not len(s):
            continue
        view, nulls = _fsb_view(chunk, shape)
        _copy_rows(view, s, d, out)
        null_dest = d[nulls[s]]
        if len(null_dest):
            out[null_dest] = 0


def _copy_rows(view: np.ndarray, src: np.ndarray, dest: np.ndarray, out: np.ndarray) -> None:
    src_run = _is_range(src, int(src[0]), len(src))
    dest_run = _is_range(dest, int(dest[0]), len(dest))
    if src_run:
        values = view[src[0]:src[0] + len(src)]
        if dest_run:
            out[dest[0]:dest[0] + len(dest)] = values
        else:
            out[dest] = values
    elif dest_run:
        np.take(view, src, axis=0, out=out[dest[0]:dest[0] + len(dest)])
    else:
        for i in range(0, len(src), _ROWS_AT_ONCE):
            out[dest[i:i + _ROWS_AT_ONCE]] = view[src[i:i + _ROWS_AT_ONCE]]


def _common(meta: pa.Table) -> dict[str, np.ndarray]:
    return {
        "clip_ids": meta.column("clip_id").to_numpy(zero_copy_only=False),
        "labels": meta.column("label").to_numpy(),
        "folds": meta.column("fold").fill_null(-1).to_numpy().astype(np.int8, copy=False),
        "splits": meta.column("split").to_numpy(zero_copy_only=False),
        "n_valid_frames": meta.column("n_valid_frames").to_numpy(),
        "audio_num_samples": meta.column("audio_num_samples").to_numpy(),
    }


def _feature_table(spec: CacheSpec, meta: pa.Table, tensors: dict[str, np.ndarray]
                   ) -> FeatureTable:
    presence = np.stack([meta.column(c).to_numpy(zero_copy_only=False) for c in
                         ("video_present", "audio_present", "text_present")], axis=1)
    return FeatureTable(spec=spec, presence=presence.astype(bool, copy=False), meta=meta,
                        frame_emb=tensors.get("frame_emb"), scene_emb=tensors.get("scene_emb"),
                        audio=tensors.get("audio"), text_emb=tensors.get("text_emb"),
                        **_common(meta))


def _media_table(spec: CacheSpec, meta: pa.Table, tensors: dict[str, np.ndarray],
                 lists: dict[str, pa.ChunkedArray]) -> MediaTable:
    # audio_num_samples is 0 exactly when audio is null (checked on write).
    present = meta.column("audio_num_samples").to_numpy() > 0
    return MediaTable(spec=spec, status=meta.column("status").to_numpy(zero_copy_only=False),
                      audio=tensors.get("audio"), audio_present=present,
                      crops=lists.get("crops"), scene=lists.get("scene"), meta=meta,
                      **_common(meta))


def _take(t: FeatureTable, index: np.ndarray) -> FeatureTable:
    changes = {}
    for f in fields(t):
        value = getattr(t, f.name)
        if isinstance(value, np.ndarray):
            changes[f.name] = value[index]
    changes["meta"] = t.meta.take(pa.array(index, pa.int64()))
    return replace(t, **changes)
