"""Read throughput of the feature table against ``numpy.load`` of the same array.

A features table at MAFW scale (10,045 clips, rounded to 10,000 here, x T 16 x D 768 float16
frame embeddings = 246 MB, plus a 768-d text embedding per clip) is written with the cache's own
``PartWriter`` in these layouts:

- ``prep``: one writer, rows in clip order, parts bounded by 64 MB (``rows_per_part=4096,
  max_part_bytes=64 << 20``: what prep's embed stage writes now; 4 parts here);
- ``4 shards``: four writers (``--shard i/4``) with the same bounds, clips spread by prep's shard
  hash, so the read must put rows back in clip order;
- ``old prep``: the layout prep wrote before, 512 rows per part (20 parts here);
- ``1 part``: a single part (the zero-copy path).

``read_features`` of each (``frame_emb`` alone, and every column on ``prep``) is timed against
``numpy.load`` of the same float16 array from an .npy file, all files warm in the page cache,
interleaved and repeated; ``one_pass_read`` (the prototype of finding 6, which the library's
reader now goes beyond: its tensor pages are read straight into the result, no Arrow decode) and
pyarrow's own floor are timed beside them. Throughput = frame_emb bytes / seconds (the "all
columns" variant also reads the text embeddings and metadata, counted in its bytes). Audio is
left out of the table here (null): with 8 s of float16 audio per clip it would add 2.6 GB that
read the same way (``--audio`` adds a table with audio, in the prep layout). Each call's process
CPU time (all threads) is recorded beside its wall time: on a shared machine it moves less with
the other jobs' load than the wall time does. ``--no-save`` prints without touching results.json.

    python benchmarks/perf/bench_cache.py [--clips 10000] [--repeats 5] [--audio] [--no-save]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import interleave, median, save_section, summarize


# name -> (shards, rows_per_part, max_part_bytes); None: every clip in one part.
LAYOUTS = {
    "prep": (1, 4096, 64 << 20),
    "4 shards": (4, 4096, 64 << 20),
    "old prep": (1, 512, 1 << 40),
    "1 part": (1, None, 1 << 40),
}


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
    n_shards, rows_per_part, max_bytes = LAYOUTS[layout]
    for shard in [(i, n_shards) for i in range(n_shards)]:
        with PartWriter(features_dir(folder), spec, shard=f"{shard[0]}/{shard[1]}", rows_per_part=rows_per_part or N,
                        max_part_bytes=max_bytes) as w:
            for i, cid in enumerate(ids):
                if not in_shard(cid, shard):
                    continue
                w.write({"clip_id": cid, "label": i % 3, "fold": 1 + i % 5, "status": "ok", "n_source_frames": 40,
                         "n_valid_frames": T, "face_ratio": 1.0, "frame_emb": frames[i], "text_emb": text[i],
                         "audio": wave, "audio_num_samples": S if audio_s else 0, "text": "x", "text_source": "annotation"})
    return folder


def one_pass_read(cache: Path, N: int, T: int, D: int, threads: int = 2) -> np.ndarray:
    """The prototype of finding 6, kept to compare with the library's reader (benchmark code,
    frame_emb only, parts in clip order as prep writes them, no spec check, no dedup, 3 of the 16
    metadata columns): each part opened once (``ParquetFile``, memory-mapped), its light and heavy
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


def with_cpu_time(variants: dict, cpu: dict[str, list[float]]) -> dict:
    """``variants`` that also append the process CPU time of each call to ``cpu[name]`` (the
    wall time is still taken by ``interleave``)."""
    def timed(name, fn):
        def run():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu.setdefault(name, []).append(time.process_time() - c0)
            return time.perf_counter() - t0
        return run
    return {name: timed(name, fn) for name, fn in variants.items()}


def breakdown(cache: Path, repeats: int) -> dict:
    """Where ``read_features(columns=["frame_emb"])`` spends its time, its steps redone one by one
    (serially, on one thread, with the library's own helpers), medians in ms."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from umbenet_cli.data import cache_read as cr
    from umbenet_cli.data.cache_parts import plan_rows
    from umbenet_cli.data.cache_schema import tensor_shapes

    table_dir = cache / "features"
    parts, spec = cr._open(table_dir, "features")
    light, _ = cr._columns("features", spec, ["frame_emb"])
    shape = tensor_shapes("features", spec)["frame_emb"]
    width = 2 * int(np.prod(shape))
    steps = {"open: spec check + footer + clip ids (_open, pool)": [], "row plan (plan_rows)": [],
             "metadata columns through Arrow, memory-mapped": [], "page headers (plain_pages)": [],
             "frame_emb pages read into a fresh result (scatter_pages)": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        parts, spec = cr._open(table_dir, "features")
        t1 = time.perf_counter()
        plan = plan_rows([p.ids for p in parts])
        t2 = time.perf_counter()
        maps = [pa.memory_map(str(p.name.path)) for p in parts]
        metas = [pq.ParquetFile(m, metadata=p.metadata).read(columns=light, use_threads=False)
                 for m, p in zip(maps, parts)]
        t3 = time.perf_counter()
        pages = [cr.plain_pages(memoryview(m.read_buffer(m.size())), p.metadata, "frame_emb", width)
                 for m, p in zip(maps, parts)]
        t4 = time.perf_counter()
        out = np.empty((plan.n, *shape), np.float16)
        for k, (m, pg) in enumerate(zip(maps, pages)):
            cr.scatter_pages(m.fileno(), pg, plan.src[k], plan.dest[k], out)
        t5 = time.perf_counter()
        for k, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            steps[k].append(1000 * dt)
        del metas, pages, maps, out
    return {"parts": len(parts), **{k: round(median(v), 1) for k, v in steps.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--audio", action="store_true", help="also a table with 8 s of audio per clip")
    ap.add_argument("--no-save", action="store_true", help="print only; leave results.json alone")
    args = ap.parse_args()

    import pyarrow.parquet as pq

    from umbenet_cli.data.cache_parts import list_parts
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
        caches, n_parts = {}, {}
        for layout in LAYOUTS:
            t0 = time.perf_counter()
            caches[layout] = write_table(tmp / layout.replace(" ", "_"), frames, text, 0.0, layout)
            n_parts[layout] = len(list_parts(caches[layout] / "features"))
            print(f"cache: wrote {N} clips as '{layout}' ({n_parts[layout]} parts) in {time.perf_counter() - t0:.1f} s")
        for layout in ("4 shards", "old prep"):
            check = read_features(caches[layout], columns=["frame_emb"])
            assert np.array_equal(check.frame_emb, frames), f"read_features returned other values ({layout})"
            del check

        def np_load():
            return np.load(npy)

        variants = {"numpy.load (reference)": np_load}
        for layout in LAYOUTS:
            variants[f"read_features frame_emb, {layout} ({n_parts[layout]} parts)"] = (
                (lambda c: lambda: read_features(c, columns=["frame_emb"]))(caches[layout]))
        variants["read_features all columns, prep"] = lambda: read_features(caches["prep"])
        assert np.array_equal(one_pass_read(caches["old prep"], N, T, D), frames)
        variants["prototype one_pass_read, old prep"] = lambda: one_pass_read(caches["old prep"], N, T, D)
        part1 = next((caches["1 part"] / "features").glob("part-*.parquet"))
        variants["pyarrow floor: pq.read_table frame_emb, 1 part, memory_map"] = (
            lambda: pq.read_table(part1, columns=["frame_emb"], memory_map=True))
        cpu: dict[str, list[float]] = {}
        times = interleave(with_cpu_time(variants, cpu), args.repeats, warmup=1)
        cpu = {k: v[1:] for k, v in cpu.items()}  # drop the warm-up round
        gbps = {k: nbytes / median(v) / 1e9 for k, v in times.items()}
        ref = median(times["numpy.load (reference)"])
        ref_cpu = median(cpu["numpy.load (reference)"])
        out["frame_emb"] = {
            "clips": N, "T": T, "D": D, "bytes": nbytes, "repeats": args.repeats, "times": summarize(times),
            "parts": n_parts, "layouts": {k: {"shards": v[0], "rows_per_part": v[1] or N, "max_part_bytes": v[2]}
                                          for k, v in LAYOUTS.items()},
            "GB_per_s": gbps,
            "fraction_of_numpy_load_speed": {k: ref / median(v) for k, v in times.items()},
            "cpu_s_median": {k: median(v) for k, v in cpu.items()},
            "fraction_of_numpy_load_cpu_time": {k: ref_cpu / median(v) for k, v in cpu.items()},
            "note": "GB/s counts the frame_emb bytes only (the 'all columns' variant reads text_emb too: +6%); "
                    "cpu = process CPU seconds of the call (all threads), less sensitive than wall time to "
                    "other jobs on a shared machine; numpy.load's ratio over the variant's",
        }
        for k, v in gbps.items():
            print(f"  {k}: {v:.2f} GB/s ({ref / median(times[k]):.2f} of numpy.load; CPU time "
                  f"{1000 * median(cpu[k]):.1f} ms, {ref_cpu / median(cpu[k]):.2f} of numpy.load's)")
        out["frame_emb"]["read_features_breakdown_ms"] = bd = {
            layout: breakdown(caches[layout], args.repeats) for layout in ("prep", "old prep")}
        for layout, steps in bd.items():
            print(f"  read_features steps ({layout}, serial, ms): {steps}")

        if args.audio:
            S = 8 * 16000
            wave = np.broadcast_to((0.1 * np.sin(np.arange(S) / 7.0)).astype(np.float16), (N, S))
            for k, a in (("frame_emb", frames), ("audio", wave), ("text_emb", text)):
                np.save(tmp / f"all_{k}.npy", a)
            cache_a = write_table(tmp / "with_audio", frames, text, 8.0, "prep")
            total = frames.nbytes + N * S * 2 + text.nbytes

            def np_all():
                return [np.load(tmp / f"all_{k}.npy") for k in ("frame_emb", "audio", "text_emb")]

            parts_a = len(list_parts(cache_a / "features"))
            name_a = f"read_features all columns, prep ({parts_a} parts of <= 64 MB), 8 s audio"
            times = interleave({"numpy.load of the 3 arrays, 3 .npy files (reference)": np_all,
                                name_a: lambda: read_features(cache_a)},
                               max(3, args.repeats // 2), warmup=1)
            ref = median(times["numpy.load of the 3 arrays, 3 .npy files (reference)"])
            out["with_audio"] = {
                "clips": N, "bytes": total, "parts": parts_a, "times": summarize(times),
                "GB_per_s": {k: total / median(v) / 1e9 for k, v in times.items()},
                "fraction_of_numpy_load_speed": {k: ref / median(v) for k, v in times.items()},
            }
            for k, v in out["with_audio"]["GB_per_s"].items():
                print(f"  {k}: {v:.2f} GB/s ({out['with_audio']['fraction_of_numpy_load_speed'][k]:.2f} of numpy.load)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_save:
        save_section("cache", out)


if __name__ == "__main__":
    main()
