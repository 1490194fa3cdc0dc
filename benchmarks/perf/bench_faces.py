"""MTCNN batched across clips against one call per frame, at 1 and at the default torch threads.

The frames are prep's own: the T=16 sampled frames of each clip (``read_video_frames``), cropped
by prep's ``FaceCropper`` with ``batch_size`` 1 (one MTCNN call per frame), 16 and 64 (what
``umbenet prep`` uses). Variants run interleaved, repeated; medians and ratios are reported.
Also checks that the batched boxes equal the per-frame boxes.

    python benchmarks/perf/bench_faces.py [--clips 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import SAMPLE_CLIPS, interleave, median, save_section, summarize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--T", type=int, default=16)
    args = ap.parse_args()

    import torch

    from pipelines.media import FaceCropper, read_video_frames

    clips = [read_video_frames(p, args.T).frames for p in SAMPLE_CLIPS[: args.clips]]
    n_frames = sum(len(c) for c in clips)
    default_threads = torch.get_num_threads()
    croppers = {b: FaceCropper(batch_size=b) for b in (1, 16, 64)}
    boxes = {}

    def variant(b: int, threads: int):
        def run():
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            out = croppers[b].crop(clips)
            dt = time.perf_counter() - t0
            torch.set_num_threads(default_threads)
            boxes[f"batch {b}, {threads} thread{'s' if threads > 1 else ''}"] = np.concatenate([f.boxes for f in out])
            return dt
        return run

    variants = {}
    for threads in sorted({default_threads, 1}, reverse=True):
        for b in (1, 16, 64):
            variants[f"batch {b}, {threads} thread{'s' if threads > 1 else ''}"] = variant(b, threads)
    print(f"faces: {args.clips} clips x {args.T} frames = {n_frames} frames "
          f"({clips[0].shape[2]}x{clips[0].shape[1]} mostly), {len(variants)} variants x {args.repeats}")
    times = interleave(variants, args.repeats, warmup=1)
    ref = boxes[f"batch 1, {default_threads} thread{'s' if default_threads > 1 else ''}"]
    same = {k: bool(np.allclose(v, ref, equal_nan=True, atol=1e-3)) for k, v in boxes.items()}
    per_frame = {n: n_frames / median(t) for n, t in times.items()}
    d = default_threads
    res = {
        "clips": args.clips, "frames": n_frames, "repeats": args.repeats, "default_threads": d,
        "times": summarize(times),
        "frames_per_s": per_frame,
        "ratio_per_frame_over_batch64_default_threads":
            median(times[f"batch 1, {d} thread{'s' if d > 1 else ''}"]) / median(times[f"batch 64, {d} thread{'s' if d > 1 else ''}"]),
        "ratio_per_frame_over_batch16_default_threads":
            median(times[f"batch 1, {d} thread{'s' if d > 1 else ''}"]) / median(times[f"batch 16, {d} thread{'s' if d > 1 else ''}"]),
        "ratio_batch64_default_threads_over_batch64_1_thread":
            median(times[f"batch 64, {d} thread{'s' if d > 1 else ''}"]) / median(times["batch 64, 1 thread"]),
        "boxes_equal_to_per_frame": same,
    }
    for n, v in per_frame.items():
        print(f"  {n}: {v:.1f} frames/s")
    save_section("faces", res)


if __name__ == "__main__":
    main()
