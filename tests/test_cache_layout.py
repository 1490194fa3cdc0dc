"""The read does not depend on the layout: many small parts, one part, shards written in any
order, parts of several row groups, column subsets; and PartWriter's ``max_part_bytes`` bound."""
from __future__ import annotations

import gc
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_cache_factory import (
    feature_row, make_spec, media_row, missing_for, write_features,
)

from umbenet_cli.data.cache_io import (
    CacheError, PartWriter, features_dir, iter_media, list_parts, media_dir, read_features,
    read_media,
)
from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.data.cache_write import write_options


def assert_same(a: FeatureTable, b: FeatureTable) -> None:
    """Every array bit-identical (dtype, shape, bytes) and the metadata table equal."""
    assert a.spec == b.spec
    for f in fields(FeatureTable):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "spec":
            continue
        if f.name == "meta":
            assert x.equals(y), "meta differs"
        elif x is None or y is None:
            assert x is None and y is None, f.name
        elif x.dtype == object:
            assert x.tolist() == y.tolist(), f.name
        else:
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            assert x.tobytes() == y.tobytes(), f.name


def rows_of(spec, n: int, seed: int = 0) -> dict[str, dict]:
    """The factory's rows for clips 0..n-1 (drawn once, so every layout writes the same rows)."""
    rng = np.random.default_rng(seed)
    return {r["clip_id"]: r for r in (feature_row(spec, i, rng, missing=missing_for(i))
                                      for i in range(n))}


def write(cache: Path, spec, rows, **writer_kw) -> Path:
    with PartWriter(features_dir(cache), spec, **writer_kw) as w:
        w.write_many(rows)
    return cache


@pytest.mark.parametrize("scene", [False, True])
def test_many_small_parts_read_like_one_part(tmp_path: Path, scene: bool) -> None:
    spec = make_spec(scene=scene)
    rows = list(rows_of(spec, 50).values())
    one = read_features(write(tmp_path / "one", spec, rows))
    many = read_features(write(tmp_path / "many", spec, rows, rows_per_part=3))
    assert len(list_parts(features_dir(tmp_path / "one"))) == 1
    assert len(list_parts(features_dir(tmp_path / "many"))) == 17
    assert not one.frame_emb.flags.owndata  # the zero-copy path
    assert_same(one, many)


def test_shards_written_in_any_order_come_back_in_clip_order(tmp_path: Path) -> None:
    spec = make_spec()
    rows = rows_of(spec, 60)
    one = read_features(write(tmp_path / "one", spec, rows.values()))
    ids = sorted(rows)
    order = np.random.default_rng(3).permutation(60)
    for shard in (2, 0, 1):  # shard i holds a shuffled third of the clips, flushed every 4 rows
        mine = [rows[ids[i]] for i in order if i % 3 == shard]
        write(tmp_path / "sharded", spec, mine, shard=f"{shard}/3", rows_per_part=4)
    sharded = read_features(tmp_path / "sharded")
    assert len(list_parts(features_dir(tmp_path / "sharded"))) == 15
    assert list(sharded.clip_ids) == ids
    assert_same(one, sharded)


def test_superseded_rows_across_many_parts(tmp_path: Path) -> None:
    spec = make_spec()
    old, new = rows_of(spec, 30, seed=0), rows_of(spec, 30, seed=5)
    ids = sorted(old)
    expected = [old[c] for c in ids[:10]] + [new[c] for c in ids[10:]]
    ref = read_features(write(tmp_path / "ref", spec, expected))
    # A first run writes every clip; redos rewrite 20..29 then 10..19 (reversed) in small parts:
    # the newest row wins wherever it sits.
    write(tmp_path / "cache", spec, old.values(), rows_per_part=4)
    write(tmp_path / "cache", spec, [new[c] for c in ids[20:]], rows_per_part=3)
    write(tmp_path / "cache", spec, [new[c] for c in ids[19:9:-1]], rows_per_part=6)
    assert_same(ref, read_features(tmp_path / "cache"))


@pytest.mark.parametrize("columns", [["frame_emb"], ["audio", "text_emb"], "text_emb", [],
                                     ["scene_emb", "frame_emb"]])
def test_column_subsets_match_the_full_read(tmp_path: Path, columns) -> None:
    spec = make_spec(scene=True)
    write_features(tmp_path, spec, range(40), rows_per_part=6)
    full = read_features(tmp_path)
    sub = read_features(tmp_path, columns=columns)
    wanted = {columns} if isinstance(columns, str) else set(columns)
    for name in ("frame_emb", "scene_emb", "audio", "text_emb"):
        got = getattr(sub, name)
        if name in wanted:
            assert got.tobytes() == getattr(full, name).tobytes(), name
        else:
            assert got is None, name
    assert sub.meta.equals(full.meta) and np.array_equal(sub.presence, full.presence)
    assert list(sub.clip_ids) == list(full.clip_ids)


def test_parts_of_several_row_groups(tmp_path: Path) -> None:
    """Parts written with small row groups (e.g. by another tool) read the same."""
    spec = make_spec()
    write_features(tmp_path / "ref", spec, range(45))
    table = pq.read_table(list_parts(features_dir(tmp_path / "ref"))[0].path)
    for name, rows in (("sorted", np.arange(45)),
                       ("shuffled", np.random.default_rng(1).permutation(45))):
        folder = features_dir(tmp_path / name)
        folder.mkdir(parents=True)
        pq.write_table(table.take(rows), folder / "part-0-of-1-00000001-0000abcd.parquet",
                       row_group_size=8, **write_options(table.schema))
        assert pq.ParquetFile(list_parts(folder)[0].path).metadata.num_row_groups == 6
        assert_same(read_features(tmp_path / "ref"), read_features(tmp_path / name))


def test_media_many_parts_like_one(tmp_path: Path) -> None:
    spec = make_spec(scene=True)
    rng = np.random.default_rng(0)
    rows = [media_row(spec, i, rng, missing=missing_for(i)) for i in range(30)]
    for name, ordered, per_part in (("one", rows, 256), ("many", rows[::-1], 4)):  # reversed
        with PartWriter(media_dir(tmp_path / name), spec, rows_per_part=per_part) as w:
            w.write_many(ordered)
    one, many = read_media(tmp_path / "one"), read_media(tmp_path / "many")
    assert many.meta.equals(one.meta) and many.crops.equals(one.crops)
    assert many.scene.equals(one.scene) and many.audio.tobytes() == one.audio.tobytes()
    assert list(many.audio_present) == list(one.audio_present)
    streamed = list(iter_media(tmp_path / "many", columns=["crops"]))
    assert len(streamed) == 8 and all(p.scene is None for p in streamed)
    by_id = {cid: crops for p in streamed for cid, crops in zip(p.clip_ids, p.crops.to_pylist())}
    assert by_id == dict(zip(one.clip_ids, one.crops.to_pylist()))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_read_leaves_no_file_open(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(30), rows_per_part=4)
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    ft = read_features(tmp_path, columns=["frame_emb"])
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before and len(ft) == 30


def test_max_part_bytes_bounds_the_parts(tmp_path: Path) -> None:
    spec = make_spec()  # a full row: frame_emb 4x8, audio 32 and text_emb 8 float16 = 144 bytes
    bound = 5 * 144
    rows = list(rows_of(spec, 30).values())
    write(tmp_path / "bounded", spec, rows, rows_per_part=1000, max_part_bytes=bound)
    parts = list_parts(features_dir(tmp_path / "bounded"))
    assert len(parts) > 1

    def tensor_bytes(path: Path) -> list[int]:  # per row, what the writer counts
        t = pq.read_table(path, columns=["frame_emb", "audio", "text_emb"])
        return [sum(t.column(n).type.byte_width for n in t.column_names
                    if t.column(n)[i].is_valid) for i in range(t.num_rows)]

    for k, part in enumerate(parts):
        sizes = tensor_bytes(part.path)
        if k < len(parts) - 1:  # flushed on the row that reached the bound, not before
            assert sum(sizes[:-1]) < bound <= sum(sizes)
        else:
            assert sum(sizes) < bound + 144
    one = read_features(write(tmp_path / "one", spec, rows))
    assert_same(read_features(tmp_path / "bounded"), one)


def test_rows_per_part_still_bounds_when_bytes_do_not(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(10), rows_per_part=4, max_part_bytes=1 << 30)
    sizes = [pq.ParquetFile(p.path).metadata.num_rows for p in list_parts(features_dir(tmp_path))]
    assert sizes == [4, 4, 2]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "64MB", True])
def test_max_part_bytes_must_be_a_positive_int(tmp_path: Path, bad) -> None:
    with pytest.raises(CacheError, match=r"max_part_bytes=.*must be a positive int"):
        PartWriter(features_dir(tmp_path), make_spec(), max_part_bytes=bad)


def test_scatter_views_each_chunk_in_place() -> None:
    """pyarrow hands one chunk per column today; several chunks, sliced chunks (an offset) and
    nulls must still land in the right rows, without combining the chunks first."""
    import pyarrow as pa

    from umbenet_cli.data.cache_read import _scatter

    rng = np.random.default_rng(0)
    values = rng.standard_normal((30, 2, 3)).astype(np.float16)
    valid = rng.random(30) > 0.2
    arr = pa.array([v.tobytes() if ok else None for v, ok in zip(values, valid)], pa.binary(12))
    col = pa.chunked_array([arr[0:7], arr[7:8], arr[8:21], arr[21:30]])  # slices: offsets != 0
    expected = np.where(valid[:, None, None], values, 0)
    for src in (np.arange(30), rng.permutation(30), np.array([3, 29, 7, 8, 0])):
        for dest in (np.arange(len(src)), rng.permutation(len(src))):
            out = np.full((len(src), 2, 3), 9, np.float16)
            _scatter(col, (2, 3), src, dest, out)
            want = np.empty_like(out)
            want[dest] = expected[src]
            assert out.tobytes() == want.tobytes()


def test_tensor_pages_are_copied_straight_from_the_mapped_file(tmp_path: Path, monkeypatch) -> None:
    """PartWriter's parts take the page reader (no Arrow decode of the tensors), nulls included."""
    import umbenet_cli.data.cache_read as cache_read

    spec = make_spec(scene=True)
    rows = list(rows_of(spec, 40).values())
    ref = read_features(write(tmp_path / "one", spec, rows))
    write(tmp_path / "many", spec, rows[::-1], rows_per_part=7)

    def no_decode(*args, **kwargs):
        raise AssertionError("a tensor column went through Arrow")

    monkeypatch.setattr(cache_read, "_scatter", no_decode)
    assert_same(ref, read_features(tmp_path / "many"))


@pytest.mark.parametrize("options, plain", [
    ({"data_page_version": "2.0"}, True),
    ({"data_page_size": 1, "write_batch_size": 3}, True),  # pages of 3 rows, nulls inside
    ({"data_page_version": "2.0", "data_page_size": 1, "write_batch_size": 2}, True),
    ({"row_group_size": 8}, True),
    ({"compression": "zstd"}, False),
    ({"use_dictionary": True}, False),
])
def test_parts_written_with_other_settings(tmp_path: Path, options: dict, plain: bool) -> None:
    """Other Parquet layouts read the same: through the page reader where it applies, through
    Arrow otherwise."""
    import pyarrow as pa

    from umbenet_cli.data.parquet_pages import NotPlain, plain_pages

    spec = make_spec()
    rows = list(rows_of(spec, 45).values())
    ref = read_features(write(tmp_path / "ref", spec, rows))
    table = pq.read_table(list_parts(features_dir(tmp_path / "ref"))[0].path)
    folder = features_dir(tmp_path / "other")
    folder.mkdir(parents=True)
    shuffled = table.take(np.random.default_rng(2).permutation(45))  # not the zero-copy path
    path = folder / "part-0-of-1-00000001-0000abcd.parquet"
    pq.write_table(shuffled, path, **{**write_options(table.schema), **options})
    assert_same(ref, read_features(tmp_path / "other"))
    mapped = pa.memory_map(str(path))
    file_bytes = memoryview(mapped.read_buffer(mapped.size()))
    metadata = pq.read_metadata(path)
    for name, width in (("frame_emb", 64), ("audio", 64), ("text_emb", 16)):
        if plain:
            pages = plain_pages(file_bytes, metadata, name, width)
            assert sum(p.n for p in pages) == 45
        else:
            with pytest.raises(NotPlain):
                plain_pages(file_bytes, metadata, name, width)


@pytest.mark.skipif(not hasattr(os, "preadv"), reason="needs os.preadv")
def test_pread_into_handles_short_reads_and_reports_a_cut_file(tmp_path: Path, monkeypatch) -> None:
    import umbenet_cli.data.parquet_pages as parquet_pages

    data = bytes(range(256)) * 4
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    real = os.preadv

    def short(fd, buffers, offset):  # the kernel may return fewer bytes than asked
        return real(fd, [memoryview(buffers[0])[:7]], offset)

    views = [np.zeros(10, np.uint8), np.zeros(3, np.uint8), np.zeros(30, np.uint8)]
    fd = os.open(path, os.O_RDONLY)
    try:
        monkeypatch.setattr(parquet_pages.os, "preadv", short)
        parquet_pages.pread_into(fd, views, 100)
        assert np.concatenate(views).tobytes() == data[100:143]
        monkeypatch.setattr(parquet_pages.os, "preadv", real)
        with pytest.raises(CacheError, match="ended early"):
            parquet_pages.pread_into(fd, [np.zeros(50, np.uint8)], len(data) - 10)
    finally:
        os.close(fd)
