"""Read throughput of the feature table against ``numpy.load`` of the same array.

A features table at MAFW scale (10,045 clips, rounded to 10,000 here, x T 16 x D 768 float16
frame embeddings = 246 MB, plus a 768-d text embedding per clip) is written with the cache's own
``PartWriter`` in three layouts:

- ``prep``: one writer, rows in clip order, 512 rows per part (what prep's embed stage writes);
- ``4 shards``: four writers (``--shard i/4``), clips spread by prep's shard hash, so the read
  must put rows back in clip order;
- ``1 part``: a single part (the zero-copy path).

``read_features`` of each (``frame_emb`` alone, and every column) is timed against ``numpy.load``
(and ``one_pass_read``, a prototype of the proposed fix, on the prep layout)
of the same float16 array from an .npy file, all files warm in the page cache, interleaved and
repeated. Throughput = frame_emb bytes / seconds (the "all columns" variant also reads the text
embeddings and metadata, counted in its bytes). Audio is left out of the table here (null): with
8 s of float16 audio per clip it would add 2.6 GB that read the same way (``--audio`` adds it).

    python benchmarks/perf/bench_cache.py [--clips 10000] [--repeats 5] [--audio]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import interleave, median, save_section, summarize


def write_table(folder: Path, frames: np.ndarray, text: np.ndarray, audio_s: float, layout: str) -> Path:
    from pipelines.prep_options import in_shard
    from umbenet_cli.data.cache_io import CacheSpec, PartWriter, features_dir

    N, T, D = frames.shape
    # Without audio the spec still needs a length: 10 ms, all null (320 bytes a row, not read by
    # the frame_emb-only variants).
    spec = CacheSpec(dataset="mafw", classes=("a", "b", "c"), num_frames=T, audio_seconds=audio_s or 0.01,
                     sample_rate=16000, sampling="bench", embed_dim=D, backbone="bench", backbone_fingerprint="0")
    S = int(round(audio_s * 16000)) if audio_s else 0
    wave = (0.1 * np.sin(np.arange(S) / 7.0)).astype(np.float32) if audio_s else None
    ids = [f"{i:05d}" for i in range(N)]
    shards = [(0, 1)] if layout != "4 shards" else [(i, 4) for i in range(4)]
    rows_per_part = N if layout == "1 part" else 512
    for shard in shards:
        with PartWriter(features_dir(folder), spec, shard=f"{shard[0]}/{shard[1]}", rows_per_part=rows_per_part,
                        max_part_bytes=1 << 40) as w:
            for i, cid in enumerate(ids):
                if not in_shard(cid, shard):
                    continue
                w.write({"clip_id": cid, "label": i % 3, "fold": 1 + i % 5, "status": "ok", "n_source_frames": 40,
                         "n_valid_frames": T, "face_ratio": 1.0, "frame_emb": frames[i], "text_emb": text[i],
                         "audio": wave, "audio_num_samples": S if audio_s else 0, "text": "x", "text_source": "annotation"})
    return folder


def one_pass_read(cache: Path, N: int, T: int, D: int, threads: int = 2) -> np.ndarray:
    """Prototype of the proposed reader fix (benchmark code, frame_emb only, parts in clip order as
    prep writes them): each part opened once (``ParquetFile``, memory-mapped), its light and heavy
    columns read in that one call, and its rows copied into the result in the same worker thread."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    parts = sorted((cache / "features").glob("part-*.parquet"))
    out = np.empty((N, T, D), np.float16)
    offsets = np.cumsum([0] + [pq.ParquetFile(p).metadata.num_rows for p in parts])

    def load(k: int):
        table = pq.ParquetFile(parts[k], memory_map=True).read(columns=["clip_id", "label", "fold", "frame_emb"])
        arr = table.column("frame_emb").chunk(0)
        n = len(arr)
        out[offsets[k]:offsets[k] + n] = np.frombuffer(arr.buffers()[1], np.float16, count=n * T * D).reshape(n, T, D)
        return table.drop_columns(["frame_emb"])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(load, range(len(parts))))
    return out


def breakdown(cache: Path, N: int, T: int, D: int, repeats: int) -> dict:
    """Where ``read_features`` spends its time on the prep layout, its steps redone one by one
    (serially, with the library's own helpers), medians in ms."""
    import pyarrow.parquet as pq

    from umbenet_cli.data import cache_read as cr
    from umbenet_cli.data.cache_parts import list_parts
    from umbenet_cli.data.cache_schema import table_schema, tensor_shapes

    table_dir = cache / "features"
    parts, spec = cr._open(table_dir, "features")
    light, _ = cr._columns("features", spec, ["frame_emb"])
    steps = {"open parts + specs (_open)": [], "light columns, all parts": [], "frame_emb column, all parts": [],
             "scatter into a fresh array (_scatter)": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        cr._open(table_dir, "features")
        t1 = time.perf_counter()
        [pq.read_table(p.path, columns=light) for p in parts]
        t2 = time.perf_counter()
        cols = [pq.read_table(p.path, columns=["frame_emb"]).column(0) for p in parts]
        t3 = time.perf_counter()
        out = np.empty((N, T, D), np.float16)
        pos = 0
        for c in cols:
            n = len(c)
            cr._scatter(c, (T, D), np.arange(n), np.arange(pos, pos + n), out)
            pos += n
        t4 = time.perf_counter()
        for k, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            steps[k].append(1000 * dt)
        del cols, out
    return {k: round(median(v), 1) for k, v in steps.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--audio", action="store_true", help="also a table with 8 s of audio per clip")
    args = ap.parse_args()

    from umbenet_cli.data.cache_read import read_features

    N, T, D = args.clips, 16, 768
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((N, T, D), dtype=np.float32).astype(np.float16)
    text = rng.standard_normal((N, D), dtype=np.float32).astype(np.float16)
    tmp = Path(tempfile.mkdtemp(prefix="perf-cache-"))
    out = {}
    try:
        npy = tmp / "frame_emb.npy"
        np.save(npy, frames)
        nbytes = frames.nbytes
        layouts = ["prep", "4 shards", "1 part"]
        caches = {}
        for layout in layouts:
            t0 = time.perf_counter()
            caches[layout] = write_table(tmp / layout.replace(" ", "_"), frames, text, 0.0, layout)
            print(f"cache: wrote {N} clips as '{layout}' in {time.perf_counter() - t0:.1f} s")
        check = read_features(caches["4 shards"], columns=["frame_emb"])
        assert np.array_equal(check.frame_emb, frames), "read_features returned other values"
        del check

        def np_load():
            return np.load(npy)

        variants = {"numpy.load (reference)": np_load}
        for layout in layouts:
            variants[f"read_features frame_emb, {layout}"] = (lambda c: lambda: read_features(c, columns=["frame_emb"]))(caches[layout])
        variants["read_features all columns, prep"] = lambda: read_features(caches["prep"])
        assert np.array_equal(one_pass_read(caches["prep"], N, T, D), frames)
        variants["prototype fix: one mmap read per part, prep"] = lambda: one_pass_read(caches["prep"], N, T, D)
        import pyarrow.parquet as pq

        part1 = next((caches["1 part"] / "features").glob("part-*.parquet"))
        variants["pyarrow floor: pq.read_table frame_emb, 1 part, memory_map"] = (
            lambda: pq.read_table(part1, columns=["frame_emb"], memory_map=True))
        times = interleave(variants, args.repeats, warmup=1)
        gbps = {k: nbytes / median(v) / 1e9 for k, v in times.items()}
        ref = median(times["numpy.load (reference)"])
        out["frame_emb"] = {
            "clips": N, "T": T, "D": D, "bytes": nbytes, "repeats": args.repeats, "times": summarize(times),
            "GB_per_s": gbps,
            "fraction_of_numpy_load_speed": {k: ref / median(v) for k, v in times.items()},
            "note": "GB/s counts the frame_emb bytes only (the 'all columns' variant reads text_emb too: +6%)",
        }
        for k, v in gbps.items():
            print(f"  {k}: {v:.2f} GB/s ({ref / median(times[k]):.2f} of numpy.load)")
        out["frame_emb"]["read_features_breakdown_ms"] = breakdown(caches["prep"], N, T, D, args.repeats)
        print(f"  read_features steps (prep layout, serial, ms): {out['frame_emb']['read_features_breakdown_ms']}")

        if args.audio:
            S = 8 * 16000
            wave = np.broadcast_to((0.1 * np.sin(np.arange(S) / 7.0)).astype(np.float16), (N, S))
            for k, a in (("frame_emb", frames), ("audio", wave), ("text_emb", text)):
                np.save(tmp / f"all_{k}.npy", a)
            cache_a = write_table(tmp / "with_audio", frames, text, 8.0, "prep")
            total = frames.nbytes + N * S * 2 + text.nbytes

            def np_all():
                return [np.load(tmp / f"all_{k}.npy") for k in ("frame_emb", "audio", "text_emb")]

            times = interleave({"numpy.load of the 3 arrays, 3 .npy files (reference)": np_all,
                                "read_features all columns, prep, 8 s audio": lambda: read_features(cache_a)},
                               max(3, args.repeats // 2), warmup=1)
            ref = median(times["numpy.load of the 3 arrays, 3 .npy files (reference)"])
            out["with_audio"] = {
                "clips": N, "bytes": total, "times": summarize(times),
                "GB_per_s": {k: total / median(v) / 1e9 for k, v in times.items()},
                "fraction_of_numpy_load_speed": {k: ref / median(v) for k, v in times.items()},
            }
            for k, v in out["with_audio"]["GB_per_s"].items():
                print(f"  {k}: {v:.2f} GB/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_section("cache", out)


if __name__ == "__main__":
    main()
