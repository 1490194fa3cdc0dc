"""PartWriter: append finished clip rows to a cache table, one atomic Parquet part at a time.

Crash safety: a part is written to ``.part-...parquet.tmp``, fsynced, then ``os.replace``d to its
final name (and the folder fsynced), so a reader sees a part whole or not at all, whenever the
process is killed. Leftover ``.tmp`` files of this writer's shard are deleted when it starts.
Rows still in the buffer when the process dies are lost and redone on resume (see ``done_ids``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from umbenet_cli.data.cache_parts import (
    max_seq, parse_shard, part_filename, remove_tmp_leftovers, table_spec, tmp_filename,
)
from umbenet_cli.data.cache_rows import RowConverter
from umbenet_cli.data.cache_schema import TABLES, CacheError, CacheSpec, spec_diff, with_notes

log = logging.getLogger(__name__)


def write_options(schema: pa.Schema) -> dict[str, Any]:
    """``pq.write_table`` options: tensors and JPEG lists stored plain (they do not compress and
    plain pages decode at memory speed), dictionaries and statistics only on small columns."""
    big = [f.name for f in schema
           if pa.types.is_fixed_size_binary(f.type) or pa.types.is_list(f.type)]
    small = [n for n in schema.names if n not in big]
    return {
        "compression": {n: ("none" if n in big else "zstd") for n in schema.names},
        "use_dictionary": [n for n in small if pa.types.is_string(schema.field(n).type)],
        "write_statistics": small,
        "data_page_size": 8 << 20,
    }


class PartWriter:
    """Buffer rows of one table and flush them as part files.

    table_dir: ``<cache>/media`` or ``<cache>/features`` (the table is taken from the folder name
    unless ``table`` is given). spec: the cache spec (media keeps only its backbone-free fields).
    shard: "i-of-n" or "i/n" of this writer (``prep --shard``). A part is flushed every
    ``rows_per_part`` rows or as soon as the buffered tensor and JPEG bytes reach
    ``max_part_bytes`` (so a part holds at most ``max_part_bytes`` plus one row), and on close.
    Larger parts read faster (``read_features``); the bound keeps the writer's buffer and each
    reader thread's decoded part within memory limits. On leaving a ``with`` block through an
    exception, the rows already accepted (each was fully validated) are still flushed, then the
    exception propagates. ``notes``: how the rows were made (e.g. the embedding precision),
    stored in each part's metadata beside the spec (``cache_schema.with_notes``). Run one writer
    per shard at a time (a new writer deletes its shard's ``.tmp`` leftovers); a writer is not
    thread-safe.
    """

    def __init__(self, table_dir: str | Path, spec: CacheSpec, shard: str = "0-of-1",
                 rows_per_part: int = 256, *, table: str | None = None,
                 max_part_bytes: int = 256 << 20, notes: Mapping[str, Any] | None = None) -> None:
        self.table_dir = Path(table_dir)
        table = table or self.table_dir.name
        if table not in TABLES:
            raise CacheError(f"cannot tell the table of {self.table_dir}: name the folder "
                             f"'media' or 'features', or pass table= one of {list(TABLES)}")
        if not isinstance(rows_per_part, int) or rows_per_part < 1:
            raise CacheError(f"rows_per_part={rows_per_part!r}: must be a positive int")
        if (not isinstance(max_part_bytes, int) or isinstance(max_part_bytes, bool)
                or max_part_bytes < 1):
            raise CacheError(f"max_part_bytes={max_part_bytes!r}: must be a positive int "
                             "(bytes, e.g. 64 << 20)")
        self.table = table
        self.shard = parse_shard(shard)
        self.rows_per_part = rows_per_part
        self.max_part_bytes = max_part_bytes
        self._convert = RowConverter(table, spec)
        self.spec = self._convert.spec
        self.schema = with_notes(self._convert.schema, dict(notes or {}))
        self._options = write_options(self.schema)
        self.table_dir.mkdir(parents=True, exist_ok=True)
        remove_tmp_leftovers(self.table_dir, self.shard)
        existing = table_spec(self.table_dir)
        if existing is not None and existing != self.spec:
            raise CacheError(f"{self.table_dir} already holds parts written with another spec: "
                             + "; ".join(spec_diff(existing, self.spec)) + " (existing vs new); "
                             "fix: write to a new cache folder, or delete the old parts")
        self._buffer: dict[str, list[Any]] = {n: [] for n in self.schema.names}
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._last_seq = 0
        self._closed = False
        self.parts_written: list[Path] = []
        self.rows_written = 0

    def write(self, row: Mapping[str, Any]) -> None:
        """Validate one clip's row (a dict, see ``cache_rows``) and buffer it."""
        if self._closed:
            raise CacheError(f"PartWriter for {self.table_dir} is closed")
        values = self._convert(row)
        for name, value in values.items():
            self._buffer[name].append(value)
            if isinstance(value, bytes):
                self._buffered_bytes += len(value)
            elif isinstance(value, list):
                self._buffered_bytes += sum(len(v) for v in value)
        self._buffered_rows += 1
        if (self._buffered_rows >= self.rows_per_part
                or self._buffered_bytes >= self.max_part_bytes):
            self.flush()

    def write_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """``write`` each row."""
        for row in rows:
            self.write(row)

    def write_batch(self, batch: Mapping[str, Sequence[Any]]) -> None:
        """Write a small batch given by column: each value has one entry per clip (tensor columns
        may be an array [B, ...]; None entries are nulls)."""
        sizes = {name: len(values) for name, values in batch.items()}
        if len(set(sizes.values())) > 1:
            raise CacheError(f"write_batch: columns have different lengths {sizes}")
        n = next(iter(sizes.values()), 0)
        for i in range(n):
            self.write({name: values[i] for name, values in batch.items()})

    def flush(self) -> Path | None:
        """Write buffered rows as one part (atomically); returns its path, None if empty."""
        if not self._buffered_rows:
            return None
        data = pa.Table.from_pydict(self._buffer, schema=self.schema)
        # Larger than every part visible now, so a part written later is always "newer".
        self._last_seq = max(self._last_seq, max_seq(self.table_dir)) + 1
        final = self.table_dir / part_filename(self.shard, self._last_seq)
        tmp = self.table_dir / tmp_filename(final.name)
        try:
            with open(tmp, "wb") as f:
                pq.write_table(data, f, **self._options)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.table_dir)
        self.parts_written.append(final)
        self.rows_written += self._buffered_rows
        log.debug("wrote %s (%d rows)", final.name, self._buffered_rows)
        self._buffer = {n: [] for n in self.schema.names}
        self._buffered_rows = 0
        self._buffered_bytes = 0
        del data
        # Arrow's allocator (mimalloc) keeps the freed table and page buffers for reuse rather
        # than returning them, and the next part's rows then come from Python's allocator: each
        # flush of a 64 MB features part left ~250 MB resident until much later, the largest
        # part of prep's growth with the clip count (benchmarks/perf, memory). Give it back now.
        pa.default_memory_pool().release_unused()
        return final

    def close(self) -> None:
        """Flush what is buffered; later writes are an error."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the original exception is the one to report
            log.exception("could not flush %d buffered rows to %s", self._buffered_rows,
                          self.table_dir)
            self._closed = True


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
