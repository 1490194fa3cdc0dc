"""Part files of a cache table: names, order ("newest wins"), leftovers and the row plan.

A finished part is named ``part-<i>-of-<n>-<seq>-<uuid8>.parquet``: the writer's shard, a sequence
number (8+ digits, zero padded) and 8 random hex digits. While being written it is
``.part-...parquet.tmp`` (a leading dot, so pyarrow/pandas folder reads skip it too); readers
only take names that match the finished pattern.

"Newest" is defined by the name, never by mtime (copies and clock skew change mtimes): a part is
newer than another when its ``(seq, shard index, shard count, uuid)`` is larger. A writer gives
each part a seq larger than every part (finished or in progress) that it can see in the folder
when it flushes, so a part written after another one finished always has a larger seq; ties only
occur between writers flushing at the same moment and are broken by shard, then uuid. When one
clip appears in several parts, the newest part's row wins (inside one part, the last row).
External tools can dedup the same way, e.g. in duckdb::

    SELECT * FROM read_parquet('cache/features/part-*.parquet', filename=true)
    QUALIFY row_number() OVER (PARTITION BY clip_id ORDER BY
        CAST(regexp_extract(filename, '-(\\d+)-[0-9a-f]{8}\\.parquet$', 1) AS BIGINT) DESC,
        filename DESC) = 1
"""
from __future__ import annotations

import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from umbenet_cli.data.cache_schema import CacheError, CacheSpec, check_same_spec, read_part_info

log = logging.getLogger(__name__)

_PART_RE = re.compile(r"^part-(?P<i>\d+)-of-(?P<n>\d+)-(?P<seq>\d+)-(?P<uid>[0-9a-f]{8})\.parquet$")
_TMP_RE = re.compile(r"^\.part-(?P<i>\d+)-of-(?P<n>\d+)-(?P<seq>\d+)-[0-9a-f]{8}\.parquet\.tmp$")
_SHARD_RE = re.compile(r"^\s*(\d+)\s*(?:/|-of-)\s*(\d+)\s*$")
READ_THREADS = min(8, os.cpu_count() or 1)


def media_dir(cache_dir: str | Path) -> Path:
    """The media table folder of a cache."""
    return Path(cache_dir) / "media"


def features_dir(cache_dir: str | Path) -> Path:
    """The features table folder of a cache."""
    return Path(cache_dir) / "features"


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """``"i/n"``, ``"i-of-n"`` or ``(i, n)`` -> ``(i, n)`` with 0 <= i < n."""
    if isinstance(shard, tuple) and len(shard) == 2:
        i, n = shard
    else:
        m = _SHARD_RE.match(str(shard))
        if not m:
            raise CacheError(f"shard={shard!r}: write it as 'i/n' or 'i-of-n', e.g. '0/4'")
        i, n = int(m.group(1)), int(m.group(2))
    if not (isinstance(i, int) and isinstance(n, int) and 0 <= i < n):
        raise CacheError(f"shard={shard!r}: need 0 <= i < n (shards are numbered from 0)")
    return i, n


@dataclass(frozen=True, order=True)
class PartName:
    """A finished part's name, ordered oldest -> newest."""

    seq: int
    shard_index: int
    shard_count: int
    uid: str
    path: Path

    @property
    def shard(self) -> str:
        return f"{self.shard_index}-of-{self.shard_count}"


def part_filename(shard: tuple[int, int], seq: int) -> str:
    """A fresh finished-part file name for ``shard`` and ``seq``."""
    return f"part-{shard[0]}-of-{shard[1]}-{seq:08d}-{uuid.uuid4().hex[:8]}.parquet"


def tmp_filename(final_name: str) -> str:
    """The in-progress name of ``final_name`` (hidden from readers and from pyarrow datasets)."""
    return f".{final_name}.tmp"


def list_parts(table_dir: str | Path) -> list[PartName]:
    """Finished parts of a table folder, oldest first; [] if the folder does not exist."""
    table_dir = Path(table_dir)
    if not table_dir.is_dir():
        return []
    parts = []
    for name in os.listdir(table_dir):
        m = _PART_RE.match(name)
        if m:
            parts.append(PartName(int(m["seq"]), int(m["i"]), int(m["n"]), m["uid"],
                                  table_dir / name))
        elif name.endswith(".parquet"):
            log.warning("ignoring %s: not a part name (part-<i>-of-<n>-<seq>-<uuid8>.parquet)",
                        table_dir / name)
    return sorted(parts)


def max_seq(table_dir: str | Path) -> int:
    """Largest seq among finished and in-progress parts in ``table_dir`` (0 if none)."""
    table_dir = Path(table_dir)
    best = 0
    if table_dir.is_dir():
        for name in os.listdir(table_dir):
            m = _PART_RE.match(name) or _TMP_RE.match(name)
            if m:
                best = max(best, int(m["seq"]))
    return best


def remove_tmp_leftovers(table_dir: str | Path, shard: tuple[int, int] | None = None) -> int:
    """Delete ``.part-*.parquet.tmp`` leftovers of crashed writers; only those of ``shard`` when
    given (other shards may be writing right now). Returns how many were removed."""
    table_dir = Path(table_dir)
    removed = 0
    if not table_dir.is_dir():
        return 0
    for name in os.listdir(table_dir):
        m = _TMP_RE.match(name)
        if m and (shard is None or (int(m["i"]), int(m["n"])) == tuple(shard)):
            try:
                os.remove(table_dir / name)
                removed += 1
            except FileNotFoundError:  # another process cleaned it first
                pass
    if removed:
        log.info("removed %d unfinished part(s) left by a crashed writer in %s", removed, table_dir)
    return removed


def table_spec(table_dir: str | Path) -> CacheSpec | None:
    """The spec shared by all parts of ``table_dir`` (None when it has no parts); CacheError if
    parts disagree or a part has an unknown schema version."""
    parts = list_parts(table_dir)
    if not parts:
        return None
    return check_same_spec(parallel_map(read_part_info, [p.path for p in parts]))


def done_ids(table_dir: str | Path, statuses: Iterable[str] | None = None) -> set[str]:
    """Clip ids already written to ``table_dir`` (reads only the clip_id column); for resume.
    An empty set when the folder has no parts yet. With ``statuses`` (e.g. ``{"ok", "partial"}``
    to retry failed clips), only clips whose newest row has one of those statuses."""
    parts = list_parts(table_dir)
    if statuses is None:
        ids: set[str] = set()
        for col in parallel_map(
                lambda p: pq.read_table(p.path, columns=["clip_id"]).column(0), parts):
            ids.update(col.to_pylist())
        return ids
    tables = parallel_map(lambda p: pq.read_table(p.path, columns=["clip_id", "status"]), parts)
    plan = plan_rows([t.column("clip_id") for t in tables])
    wanted = set(statuses)
    ids = set()
    for table, rows in zip(tables, plan.kept):
        kept = table.take(pa.array(rows))
        for cid, status in zip(kept.column("clip_id").to_pylist(),
                               kept.column("status").to_pylist()):
            if status in wanted:
                ids.add(cid)
    return ids


@dataclass(frozen=True)
class RowPlan:
    """Which rows of which part make the deduplicated table, in output order (clip_id order).

    For part k, rows ``src[k]`` of that part go to output rows ``dest[k]`` (int64 arrays)."""

    n: int
    src: list[np.ndarray]
    dest: list[np.ndarray]
    kept: list[np.ndarray]  # per part, its surviving rows in file order (for streaming reads)


def plan_rows(ids_per_part: list[pa.ChunkedArray | pa.Array]) -> RowPlan:
    """Dedup (newest part wins, last row inside a part) and sort by clip_id.

    ``ids_per_part``: the clip_id column of each part, parts ordered oldest -> newest."""
    lengths = np.array([len(a) for a in ids_per_part], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    chunks = [c for a in ids_per_part
              for c in (a.chunks if isinstance(a, pa.ChunkedArray) else [a])]
    all_ids = pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())
    codes = pc.dictionary_encode(all_ids).indices.to_numpy(zero_copy_only=False)
    total = len(codes)
    # Last occurrence of each id = first occurrence in the reversed array.
    _, first_rev = np.unique(codes[::-1], return_index=True)
    keep = np.sort(total - 1 - first_rev)
    order = pc.sort_indices(all_ids.take(pa.array(keep))).to_numpy()
    global_src = keep[order]  # output row r comes from global row global_src[r]
    src, dest, kept = [], [], []
    for k in range(len(ids_per_part)):
        lo, hi = starts[k], starts[k + 1]
        rows = np.nonzero((global_src >= lo) & (global_src < hi))[0]
        src.append(global_src[rows] - lo)
        dest.append(rows)
        kept.append(keep[(keep >= lo) & (keep < hi)] - lo)
    return RowPlan(n=len(global_src), src=src, dest=dest, kept=kept)


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on a few threads (pyarrow reads release the GIL)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(fn, items))
