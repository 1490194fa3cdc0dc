"""Fixed-size tensor columns read from Parquet pages straight into numpy rows.

PartWriter stores the tensor columns PLAIN and
uncompressed (cache_write.write_options), so each data page holds its non-null values exactly as
they sit in memory, after a small header (Thrift compact protocol) and the definition levels
(which rows are null). Only that layout is read here; anything else raises NotPlain and the
column goes through Arrow. Every size is checked against the page and column-chunk sizes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from umbenet_cli.data.cache_schema import CacheError


class NotPlain(Exception):
    """A column chunk stored in a way ``plain_pages`` does not read."""


@dataclass(frozen=True)
class Page:
    """One data page: rows ``row .. row+n-1`` of the part; the values of its non-null rows are
    contiguous from byte ``start`` of the file; ``valid`` is None when no row is null."""

    row: int
    n: int
    start: int
    valid: np.ndarray | None


_PLAIN, _RLE = 0, 3  # parquet Encoding
_DATA_PAGE, _DATA_PAGE_V2 = 0, 3  # parquet PageType


def plain_pages(file: memoryview, metadata: pq.FileMetaData, name: str, width: int
                 ) -> list[Page]:
    """The data pages of column ``name`` (fixed_size_binary of ``width`` bytes) in every row
    group of the file whose bytes are ``file``; NotPlain if it is not stored PLAIN,
    uncompressed, flat, without a dictionary."""
    try:
        return _plain_pages_unchecked(file, metadata, name, width)
    except NotPlain:
        raise
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise NotPlain(f"{name}: {e}") from None


def _plain_pages_unchecked(file: memoryview, metadata: pq.FileMetaData, name: str, width: int
                           ) -> list[Page]:
    schema = metadata.schema
    leaves = [i for i in range(len(schema)) if schema.column(i).path == name]
    if len(leaves) != 1:
        raise NotPlain(f"{name}: not one flat column")
    leaf = leaves[0]
    column = schema.column(leaf)
    max_def = column.max_definition_level
    if (column.physical_type != "FIXED_LEN_BYTE_ARRAY" or column.length != width
            or column.max_repetition_level != 0 or max_def > 1):
        raise NotPlain(f"{name}: not a flat fixed_size_binary({width}) column")
    pages: list[Page] = []
    row = 0
    for g in range(metadata.num_row_groups):
        chunk = metadata.row_group(g).column(leaf)
        if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
            raise NotPlain(f"{name}: compressed or dictionary-encoded")
        pos = chunk.data_page_offset
        end = pos + chunk.total_compressed_size
        if end > len(file):
            raise NotPlain(f"{name}: column chunk past the end of the file")
        rows = 0
        while pos < end:
            header, pos = _thrift_struct(file, pos)
            size = header[3]
            if header[2] != size or pos + size > end:
                raise NotPlain(f"{name}: page sizes do not add up")
            if header[1] == _DATA_PAGE:
                page = header[5]
                n = page[1]
                if page[2] != _PLAIN or (max_def and page[3] != _RLE):
                    raise NotPlain(f"{name}: not PLAIN values with RLE levels")
                levels_at, levels_len = pos, 0
                if max_def:
                    levels_at, levels_len = pos + 4, int.from_bytes(file[pos:pos + 4], "little")
                values = levels_at + levels_len
            elif header[1] == _DATA_PAGE_V2:
                page = header[8]
                n = page[1]
                if page[4] != _PLAIN or page.get(6, 0) != 0:
                    raise NotPlain(f"{name}: not PLAIN values")
                levels_at, levels_len = pos, page.get(5, 0)
                values = levels_at + levels_len
            else:
                raise NotPlain(f"{name}: page type {header[1]}")
            valid = _def_levels(file[levels_at:levels_at + levels_len], n) if max_def else None
            n_values = n if valid is None else int(np.count_nonzero(valid))
            if n < 0 or values + n_values * width != pos + size:
                raise NotPlain(f"{name}: page values do not fill the page")
            pages.append(Page(row=row + rows, n=n, start=values, valid=valid))
            rows += n
            pos += size
        if pos != end or rows != chunk.num_values:
            raise NotPlain(f"{name}: pages do not fill the column chunk")
        row += rows
    if row != metadata.num_rows:
        raise NotPlain(f"{name}: {row} values for {metadata.num_rows} rows")
    return pages


def _def_levels(levels: memoryview, n: int) -> np.ndarray | None:
    """Definition levels (bit width 1, RLE/bit-packed hybrid) -> valid mask [n]; None when
    every row is valid."""
    runs = []
    pos = got = 0
    while got < n:
        head, pos = _varint(levels, pos)
        count = head >> 1
        if not count:
            raise NotPlain("empty run in the definition levels")
        if head & 1:  # bit-packed: count groups of 8 values, one byte each at bit width 1
            bits = np.frombuffer(levels[pos:pos + count], np.uint8)
            if len(bits) != count:
                raise NotPlain("definition levels cut short")
            runs.append(np.unpackbits(bits, bitorder="little").view(bool))
            pos += count
        else:  # run of one value
            value = levels[pos]
            if value > 1:
                raise NotPlain("definition level above 1")
            if value == 1 and not runs and count >= n:
                return None  # the usual page: one run, no nulls
            runs.append(np.full(count, bool(value)))
            pos += 1
        got += len(runs[-1])
    if pos > len(levels):
        raise NotPlain("definition levels past their length")
    valid = np.concatenate(runs)[:n]
    return None if valid.all() else valid


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise NotPlain("varint too long")


def _thrift_struct(buf: memoryview, pos: int) -> tuple[dict[int, object], int]:
    """A Thrift compact-protocol struct: {field id: int, bool or nested struct dict} (other
    field types are skipped)."""
    fields_: dict[int, object] = {}
    field = 0
    while True:
        head = buf[pos]
        pos += 1
        if head == 0:
            return fields_, pos
        kind, delta = head & 0x0F, head >> 4
        if delta:
            field += delta
        else:
            raw, pos = _varint(buf, pos)
            field = (raw >> 1) ^ -(raw & 1)
        if kind in (1, 2):
            fields_[field] = kind == 1
        elif kind == 3:
            fields_[field] = buf[pos]
            pos += 1
        elif kind in (4, 5, 6):
            raw, pos = _varint(buf, pos)
            fields_[field] = (raw >> 1) ^ -(raw & 1)
        elif kind == 12:
            fields_[field], pos = _thrift_struct(buf, pos)
        else:
            pos = _thrift_skip(buf, pos, kind)


def _thrift_skip(buf: memoryview, pos: int, kind: int) -> int:
    if kind in (1, 2):
        return pos
    if kind == 3:
        return pos + 1
    if kind in (4, 5, 6):
        return _varint(buf, pos)[1]
    if kind == 7:
        return pos + 8
    if kind == 8:
        size, pos = _varint(buf, pos)
        return pos + size
    if kind in (9, 10):
        head = buf[pos]
        pos += 1
        size, elem = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buf, pos)
        for _ in range(size):
            pos = _thrift_skip(buf, pos, elem)
        return pos
    if kind == 11:
        size, pos = _varint(buf, pos)
        if size:
            kinds = buf[pos]
            pos += 1
            for _ in range(size):
                pos = _thrift_skip(buf, _thrift_skip(buf, pos, kinds >> 4), kinds & 0x0F)
        return pos
    if kind == 12:
        return _thrift_struct(buf, pos)[1]
    raise NotPlain(f"unknown Thrift type {kind}")


def scatter_pages(fd: int, pages: list[Page], src: np.ndarray, dest: np.ndarray,
                   out: np.ndarray) -> None:
    """``out[dest] = rows src`` of a column whose pages are ``pages`` in the open file ``fd``;
    null rows become zeros. The values are read (``preadv``) straight into the result rows: one
    copy, page cache -> result, as ``numpy.load`` does."""
    out_bytes = out.reshape(len(out), -1).view(np.uint8)
    width = out_bytes.shape[1]
    for page in pages:
        if len(pages) == 1:
            s, d = src - page.row, dest
        else:
            sel = (src >= page.row) & (src < page.row + page.n)
            s, d = src[sel] - page.row, dest[sel]
        if not len(s):
            continue
        if page.valid is not None:  # values are stored for the non-null rows only
            ok = page.valid[s]
            out_bytes[d[~ok]] = 0
            s, d = (np.cumsum(page.valid) - 1)[s[ok]], d[ok]
            if not len(s):
                continue
        if not np.all(np.diff(s) > 0):  # read the file forwards
            order = np.argsort(s, kind="stable")
            s, d = s[order], d[order]
        # Runs contiguous in the file are read in one call, into as many buffers as their rows
        # make contiguous runs in the result.
        file_breaks = np.flatnonzero(np.diff(s) != 1) + 1
        for run_s, run_d in zip(np.split(s, file_breaks), np.split(d, file_breaks)):
            dest_breaks = np.flatnonzero(np.diff(run_d) != 1) + 1
            starts = np.concatenate([[0], dest_breaks])
            ends = np.concatenate([dest_breaks, [len(run_d)]])
            views = [out_bytes[run_d[a]:run_d[a] + (b - a)] for a, b in zip(starts, ends)]
            pread_into(fd, views, page.start + int(run_s[0]) * width)


_IOV_MAX = 1024  # buffers per preadv call (the POSIX minimum of IOV_MAX is 16; Linux has 1024)
if hasattr(os, "sysconf"):
    try:
        _IOV_MAX = max(16, min(_IOV_MAX, os.sysconf("SC_IOV_MAX")))
    except (ValueError, OSError):
        pass


def pread_into(fd: int, views: list[np.ndarray], offset: int) -> None:
    """Fill ``views`` (contiguous uint8 arrays, in order) from the file bytes at ``offset``."""
    buffers = [memoryview(v).cast("B") for v in views]
    i = 0
    while i < len(buffers):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, buffers[i:i + _IOV_MAX], offset)
        else:  # pragma: no cover - platforms without preadv
            got = os.pread(fd, len(buffers[i]), offset)
            buffers[i][:len(got)] = got
            got = len(got)
        if got <= 0:
            raise CacheError(f"a cache part ended early (read at byte {offset}): it changed while "
                             "being read, or is damaged; fix: delete it and re-run `umbenet prep`")
        offset += got
        while got and i < len(buffers):  # skip the buffers filled, trim a partly filled one
            if got >= len(buffers[i]):
                got -= len(buffers[i])
                i += 1
            else:
                buffers[i] = buffers[i][got:]
                got = 0
