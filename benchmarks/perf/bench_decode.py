"""Sampled-frame decoding (prep) against decoding every frame, per clip, on the CPU.

Variants, each over the same clips one after another, interleaved and repeated:

- ``sampled (prep)``: what prep's decode step does per clip: ``probe`` (ffprobe, packets counted)
  then ``read_video_frames`` (one ffmpeg with a select filter, T frames as raw RGB to a pipe).
- ``every frame -> pipe``: one ffmpeg decoding every frame to raw RGB on a pipe read by this
  process (then dropped): the floor of any "decode everything" approach. (Sent to /dev/null
  instead, the RGB conversion and copy are skipped and it costs about what select does.)
- ``every frame -> JPEG``: ``ffmpeg -i clip.mp4 frames/%05d.jpg``, the baseline's first step.
- ``probe (prep, part of sampled)``: the ffprobe call alone.
- ``audio (prep)``: prep's ``extract_audio`` given the probe (one more ffmpeg per clip).
- ``process start``: ``ffmpeg -version``, what one ffmpeg process costs before any work.
- ``decode_clip, audio separate``: prep's whole per-clip decode (``pipelines.clip_decode``) as it
  was: probe, frames, audio in three processes (``joint_audio=False``).
- ``decode_clip, audio joint (prep)``: the same with the audio taken from the frames' ffmpeg
  (two processes per clip with audio; finding 7).

Clip sets: the 33 sample clips (short, 160x160, 10-15 fps) and MAFW-like clips made from them
(720p, 25 fps, about 5 s = 125 frames; see ``_common.hd_clips``).

    python benchmarks/perf/bench_decode.py [--repeats 3] [--hd 4] [--only-clip]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import SAMPLE_CLIPS, count_frames, hd_clips, interleave, median, save_section, summarize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hd", type=int, default=4, help="MAFW-like 720p clips to make (0: none)")
    ap.add_argument("--sample", type=int, default=33, help="how many of the sample clips")
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--only-clip", action="store_true",
                    help="only the two decode_clip variants (audio separate vs joint)")
    args = ap.parse_args()

    import torch

    from pipelines.clip_decode import decode_clip
    from pipelines.media import extract_audio, probe, read_video_frames
    from pipelines.sources import ClipRecord

    torch.set_num_threads(1)  # decoding is in ffmpeg; keep torch from competing

    tmp = Path(tempfile.mkdtemp(prefix="perf-decode-"))
    sets = {"sample clips": SAMPLE_CLIPS[: args.sample]}
    if args.hd:
        sets["MAFW-like 720p 25 fps 5 s"] = hd_clips(tmp / "hd", args.hd)
    out = {}
    try:
        for name, clips in sets.items():
            frames_total = sum(count_frames(c) for c in clips)
            jpg_dir = tmp / "jpg"

            def sampled():
                for c in clips:
                    info = probe(c, require_video=False)
                    read_video_frames(c, args.T, info=info)

            def full_pipe():
                for c in clips:
                    p = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", str(c), "-map", "0:v:0",
                                          "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], stdout=subprocess.PIPE)
                    while p.stdout.read(1 << 20):  # read by this process, as a consumer would, then dropped
                        pass
                    p.wait()

            def full_jpeg():
                for c in clips:
                    d = jpg_dir / c.stem
                    d.mkdir(parents=True, exist_ok=True)
                    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(c), str(d / "%05d.jpg")],
                                   check=True)
                shutil.rmtree(jpg_dir)

            infos = {c: probe(c, require_video=False) for c in clips}

            def probe_only():
                for c in clips:
                    probe(c, require_video=False)

            def audio():
                for c in clips:
                    extract_audio(c, 16000, info=infos[c])

            records = [ClipRecord(clip_id=c.stem, media_path=c, media_kind="video", label=0, text=None,
                                  text_source="none", fold=1, split=None) for c in clips]
            S = 8 * 16000

            def clip_separate():
                for r in records:
                    decode_clip(r, args.T, 16000, S, joint_audio=False)

            def clip_joint():
                for r in records:
                    decode_clip(r, args.T, 16000, S, joint_audio=True)

            def start():
                for _ in clips:
                    subprocess.run(["ffmpeg", "-version"], stdout=subprocess.DEVNULL, check=True)

            print(f"decode: {name}: {len(clips)} clips, {frames_total} frames, torch threads 1")
            variants = {"sampled (prep)": sampled, "every frame -> pipe": full_pipe,
                        "every frame -> JPEG": full_jpeg, "probe (prep, part of sampled)": probe_only,
                        "audio (prep)": audio, "process start": start}
            if args.only_clip:
                variants = {"process start": start}
            variants.update({"decode_clip, audio separate": clip_separate,
                             "decode_clip, audio joint (prep)": clip_joint})
            times = interleave(variants, args.repeats, warmup=1)
            n = len(clips)
            out[name] = {
                "clips": n, "frames": frames_total, "T": args.T, "times": summarize(times),
                "clips_per_s": {k: n / median(v) for k, v in times.items()},
                "ms_per_clip": {k: 1000 * median(v) / n for k, v in times.items()},
                **({} if args.only_clip else {
                    "ratio_every_frame_jpeg_over_sampled": median(times["every frame -> JPEG"]) / median(times["sampled (prep)"]),
                    "ratio_every_frame_pipe_over_sampled": median(times["every frame -> pipe"]) / median(times["sampled (prep)"]),
                    "process_start_share_of_sampled": 2 * median(times["process start"]) / median(times["sampled (prep)"])}),
                "ratio_decode_clip_separate_over_joint": (median(times["decode_clip, audio separate"])
                                                          / median(times["decode_clip, audio joint (prep)"])),
                "note": "sampled = probe + select decode: two processes per clip; process_start_share counts both",
            }
            for k, v in out[name]["ms_per_clip"].items():
                print(f"  {k}: {v:.0f} ms/clip")
            print(f"  decode_clip separate / joint: {out[name]['ratio_decode_clip_separate_over_joint']:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_section("decode", out)


if __name__ == "__main__":
    main()
