"""Crash safety, resume, newest-wins dedup, sharded writers and spec checks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_cache_factory import feature_row, make_spec, missing_for, write_features

import umbenet_cli.data.cache_write as cache_write
from umbenet_cli.data.cache_io import (
    CacheError, PartWriter, done_ids, features_dir, list_parts, read_features,
)

REPO = Path(__file__).resolve().parents[1]


def _rows(ids, seed=0, spec=None):
    spec = spec or make_spec()
    rng = np.random.default_rng(seed)
    return [feature_row(spec, i, rng, missing=missing_for(i)) for i in ids]


def test_empty_cache_says_run_prep(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"no part files in .*features: run `umbenet prep"):
        read_features(tmp_path)
    assert done_ids(features_dir(tmp_path)) == set()


def test_tmp_leftover_is_ignored_then_cleaned_by_its_shard(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(5))
    table = features_dir(tmp_path)
    mine = table / ".part-0-of-2-00000009-deadbeef.parquet.tmp"
    other = table / ".part-1-of-2-00000009-deadbeef.parquet.tmp"
    for leftover in (mine, other):
        leftover.write_bytes(b"PAR1 half a part")  # what a killed writer leaves
    assert len(read_features(tmp_path)) == 5
    assert len(pd.read_parquet(table)) == 5  # pandas' folder read skips the hidden tmp too
    PartWriter(table, make_spec(), shard="0/2").close()
    assert not mine.exists() and other.exists()  # shard 1 may still be writing it


def test_exception_inside_writer_keeps_complete_parts(tmp_path: Path) -> None:
    rows = _rows(range(10))
    with pytest.raises(RuntimeError, match="stage blew up"):
        with PartWriter(features_dir(tmp_path), make_spec(), rows_per_part=4) as w:
            w.write_many(rows[:6])  # one part flushed, two rows buffered
            raise RuntimeError("stage blew up")
    # Rows accepted before the error are whole and kept; nothing half-written is visible.
    assert done_ids(features_dir(tmp_path)) == {r["clip_id"] for r in rows[:6]}
    assert not [p for p in features_dir(tmp_path).iterdir() if p.name.endswith(".tmp")]


def test_failure_while_writing_a_part_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    rows = _rows(range(8))
    with PartWriter(features_dir(tmp_path), make_spec(), rows_per_part=4) as w:
        w.write_many(rows[:4])

    def half_write(table, where, **kw):
        where.write(b"PAR1" + b"\0" * 100)  # some bytes reach the disk, then the disk fills
        raise OSError("No space left on device")

    monkeypatch.setattr(cache_write.pq, "write_table", half_write)
    w = PartWriter(features_dir(tmp_path), make_spec(), rows_per_part=4)
    with pytest.raises(OSError, match="No space"):
        w.write_many(rows[4:])
    assert os.listdir(features_dir(tmp_path)) == [list_parts(features_dir(tmp_path))[0].path.name]
    assert len(read_features(tmp_path)) == 4


_KILLED_WRITER = """
import sys, numpy as np
sys.path[:0] = [{repo!r}, {tests!r}]
from test_cache_factory import feature_row, make_spec
from umbenet_cli.data.cache_io import PartWriter
spec, rng = make_spec(), np.random.default_rng(0)
w = PartWriter({table!r}, spec, rows_per_part=16)
print("started", flush=True)
for i in range(10**9):
    w.write(feature_row(spec, i, rng))
"""


def test_writer_killed_at_any_moment_leaves_a_readable_cache(tmp_path: Path) -> None:
    table = features_dir(tmp_path)
    code = _KILLED_WRITER.format(repo=str(REPO), tests=str(REPO / "tests"), table=str(table))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"started"
    deadline = time.monotonic() + 20
    while len(list_parts(table)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ft = read_features(tmp_path)  # every finished part is whole
    assert len(ft) >= 48 and len(ft) % 16 == 0
    assert done_ids(table) == set(ft.clip_ids)


def test_resume_after_partial_write(tmp_path: Path) -> None:
    rows = _rows(range(30))
    table = features_dir(tmp_path)
    w = PartWriter(table, make_spec(), rows_per_part=8)
    w.write_many(rows[:20])  # 16 rows flushed, 4 buffered, then the process "dies"
    del w
    done = done_ids(table)
    assert done == {r["clip_id"] for r in rows[:16]}
    with PartWriter(table, make_spec(), rows_per_part=8) as w:
        w.write_many(r for r in rows if r["clip_id"] not in done)
    ft = read_features(tmp_path)
    assert list(ft.clip_ids) == sorted(r["clip_id"] for r in rows)


def test_newest_part_wins_by_sequence_not_mtime(tmp_path: Path) -> None:
    table = features_dir(tmp_path)
    old = write_features(tmp_path, make_spec(), range(10), seed=1, rows_per_part=4)
    first_parts = [p.path for p in list_parts(table)]
    new = write_features(tmp_path, make_spec(), range(5, 8), seed=2)  # a --force redo of 3 clips
    for p in first_parts:  # an old part copied later must not become "newest"
        os.utime(p, (time.time() + 3600, time.time() + 3600))
    ft = read_features(tmp_path)
    assert len(ft) == 10 and len(set(ft.clip_ids)) == 10
    want = {r["clip_id"]: r for r in old} | {r["clip_id"]: r for r in new}
    for i, cid in enumerate(ft.clip_ids):
        src = want[cid]["text_emb"]
        expect = np.zeros(8, np.float16) if src is None else np.asarray(src, np.float16)
        assert ft.text_emb[i].tobytes() == expect.tobytes()
    assert done_ids(table) == set(want)


def test_duplicate_inside_one_part_last_row_wins(tmp_path: Path) -> None:
    a, b = _rows([3], seed=1)[0], _rows([3], seed=2)[0]
    with PartWriter(features_dir(tmp_path), make_spec()) as w:
        w.write_many([a, b])
    ft = read_features(tmp_path)
    assert len(ft) == 1 and ft.frame_emb[0].tobytes() == b["frame_emb"].tobytes()


def test_two_parallel_shards_equal_one_unsharded_write(tmp_path: Path) -> None:
    rows = _rows(range(60))
    with PartWriter(features_dir(tmp_path / "one"), make_spec(), rows_per_part=9) as w:
        w.write_many(rows)

    def shard(i: int) -> None:
        with PartWriter(features_dir(tmp_path / "two"), make_spec(), shard=f"{i}/2",
                        rows_per_part=5) as w:
            w.write_many(rows[i::2])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(shard, [0, 1]))
    shards = {p.shard for p in list_parts(features_dir(tmp_path / "two"))}
    assert shards == {"0-of-2", "1-of-2"}
    one, two = read_features(tmp_path / "one"), read_features(tmp_path / "two")
    assert one.meta.equals(two.meta)
    for name in ("frame_emb", "audio", "text_emb", "presence", "labels", "folds"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name


def test_writer_refuses_a_cache_with_another_spec(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(3))
    with pytest.raises(CacheError, match=r"num_frames: 4 vs 8"):
        PartWriter(features_dir(tmp_path), make_spec(num_frames=8))


def test_reader_names_fields_and_files_of_mismatched_parts(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(3))
    write_features(tmp_path / "b", make_spec(backbone_fingerprint="sha256:11"), range(3, 6))
    stray = list_parts(features_dir(tmp_path / "b"))[0].path
    os.replace(stray, features_dir(tmp_path) / stray.name.replace("-00000001-", "-00000002-"))
    with pytest.raises(CacheError) as err:
        read_features(tmp_path)
    msg = str(err.value)
    assert "backbone_fingerprint: 'sha256:00' vs 'sha256:11'" in msg
    assert all(p.path.name in msg for p in list_parts(features_dir(tmp_path)))


def test_part_rewritten_by_another_tool_is_refused(tmp_path: Path) -> None:
    write_features(tmp_path, make_spec(), range(3))
    part = list_parts(features_dir(tmp_path))[0].path
    table = pq.read_table(part)
    table = table.set_column(table.schema.get_field_index("label"), "label",
                             table.column("label").cast("int64"))
    pq.write_table(table, part)  # pyarrow keeps the metadata, but the column type changed
    with pytest.raises(CacheError, match=r"column 'label' is int64 but .* says int16"):
        read_features(tmp_path)


def test_done_ids_by_status_uses_the_newest_row(tmp_path: Path) -> None:
    rows = _rows(range(6))
    rows[2] = {**rows[2], "status": "failed", "status_reason": "decode: broken file"}
    table = features_dir(tmp_path)
    with PartWriter(table, make_spec()) as w:
        w.write_many(rows)
    assert done_ids(table, statuses={"ok", "partial"}) == {f"clip-{i:05d}" for i in (0, 1, 3, 4, 5)}
    with PartWriter(table, make_spec()) as w:  # the retry succeeds
        w.write({**rows[2], "status": "ok", "status_reason": ""})
    assert done_ids(table, statuses={"ok", "partial"}) == {r["clip_id"] for r in rows}
