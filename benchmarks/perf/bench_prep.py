"""``umbenet prep`` on the CPU: against the public-DFER way, per stage, and against its own core work.

Part 1 (``--baseline``): the same clips prepared by
  - ``dfer_baseline.py`` (every frame to JPEG with ffmpeg, MTCNN per frame, crop+save, ffmpeg wav),
  - ``umbenet prep manifest ... --media-only``,
  - ``umbenet prep manifest ...`` (media + embed with the offline tiny CLIP),
each a fresh process writing into a fresh folder, interleaved and repeated, once as installed
(torch's default threads = cores) and once with OMP_NUM_THREADS=1 for every process (``--modes``).
First on copies of the sample clips, then (``--hd N``) on MAFW-like 720p clips made from them.

Part 2 (``--stages``): ``run_prep`` in this process (media + embed, tiny CLIP) against prep's own
decoding plus face detection done alone, one after the other: for every clip ``probe`` +
``read_video_frames`` (T sampled frames), then ``FaceCropper(batch_size=64).crop`` over batches of
16 clips (prep's settings). Interleaved and repeated. Also the time per stage that prep reports
(``PrepSummary.seconds``), as clips/s and as shares, and prep's other steps timed alone (audio
extraction, JPEG encoding of the crops).

All clips are copies of the sample clips (``_common.clip_set``). Prep uses T = 16 and 8 s of
audio (preset ``default``) with ``backbone=umbenet/tiny-random-clip``, so no model is downloaded.

    python benchmarks/perf/bench_prep.py --baseline --stages [--clips 33] [--hd 2] [--repeats 3]
        [--old-tree DIR]   # DIR: `git archive <earlier commit> | tar -x -C DIR`, run beside this tree
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from _common import (MAFW_CLASSES, PYTHON, SAMPLE_CLIPS, UMBENET, HERE, clip_set, count_frames, hd_clips, interleave,
                     median, run_cmd, save_section, summarize)

TINY = "umbenet/tiny-random-clip"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def prep_args(manifest: Path, out: Path, media_only: bool) -> list[str]:
    args = [UMBENET, "prep", "manifest", str(manifest), "--classes", ",".join(MAFW_CLASSES), "--out", str(out),
            "--preset", "default", "--set", f"backbone={TINY}"]
    return args + (["--media-only"] if media_only else [])


def parse_prep_seconds(text: str) -> dict[str, float]:
    """The 'time ...' rows of prep's summary table."""
    out = {}
    for m in re.finditer(r"time ([a-z:/ ]+?)(?: \(all workers\))?\s+│\s+([\d.]+) s", text):
        out[m.group(1).strip()] = float(m.group(2))
    return out


def baseline_part(source: list[Path], repeats: int, modes: list[str], tmp: Path, name: str,
                  full_prep: bool = True, old_tree: Path | None = None) -> dict:
    """Baseline vs prep --media-only vs full prep on copies of ``source``, for each torch-thread
    mode ("default": as installed; "1": OMP_NUM_THREADS=1 for every process). With ``old_tree``
    (an export of an earlier commit, e.g. ``git archive <commit> | tar -x -C DIR``), the same prep
    commands also run from that tree (PYTHONPATH=DIR ahead of the editable install), interleaved
    with the others: before/after in one run."""
    n = len(source)
    folder = tmp / name.replace(" ", "_")
    manifest = clip_set(folder, n, source=source)
    clips = sorted((folder / "clips").glob("*.mp4"))
    details: dict[str, list] = {}
    counter = {"i": 0}

    def fresh() -> Path:
        counter["i"] += 1
        return tmp / f"out{counter['i']}"

    def baseline(key, env):
        def run():
            out = fresh()
            r = run_cmd([PYTHON, str(HERE / "dfer_baseline.py"), str(out), *map(str, clips)], env={**OFFLINE, **env})
            info = json.loads(r["stdout"].strip().splitlines()[-1])
            details.setdefault(key, []).append(
                {"wall_s": r["wall_s"], "in_process_s": info["seconds"]["total"], "frames": info["frames"],
                 "faces_saved": info["faces_saved"], "steps_s": info["seconds"], "maxrss_mib": r["maxrss_mib"]})
            shutil.rmtree(out)
            return r["wall_s"]
        return run

    def prep(key, media_only: bool, env):
        def run():
            out = fresh()
            r = run_cmd(prep_args(manifest, out, media_only), env={**OFFLINE, **env})
            secs = parse_prep_seconds(r["stderr"] + r["stdout"])
            details.setdefault(key, []).append({"wall_s": r["wall_s"], "in_process_s": secs.get("total", float("nan")),
                                                "seconds": secs, "maxrss_mib": r["maxrss_mib"]})
            shutil.rmtree(out)
            return r["wall_s"]
        return run

    variants = {}
    for mode in modes:
        env = {} if mode == "default" else {"OMP_NUM_THREADS": mode}
        sfx = "" if mode == "default" else f", OMP_NUM_THREADS={mode}"
        variants[f"baseline (public DFER way){sfx}"] = baseline(f"baseline (public DFER way){sfx}", env)
        variants[f"umbenet prep --media-only{sfx}"] = prep(f"umbenet prep --media-only{sfx}", True, env)
        if full_prep:
            variants[f"umbenet prep (full, tiny CLIP){sfx}"] = prep(f"umbenet prep (full, tiny CLIP){sfx}", False, env)
        if old_tree is not None:
            old_env = {**env, "PYTHONPATH": str(old_tree)}
            k = f"umbenet prep --media-only{sfx}, before"
            variants[k] = prep(k, True, old_env)
            if full_prep:
                k = f"umbenet prep (full, tiny CLIP){sfx}, before"
                variants[k] = prep(k, False, old_env)
    frames = sum(count_frames(c) for c in clips)
    print(f"prep vs baseline, {name}: {n} clips ({frames} frames), {len(variants)} variants x {repeats}")
    times = interleave(variants, repeats)
    res = {"clips": n, "frames": frames, "repeats": repeats, "times_wall": summarize(times),
           "times_in_process": {k: median([d["in_process_s"] for d in v]) for k, v in details.items()},
           "clips_per_s_wall": {k: n / median(v) for k, v in times.items()},
           "speedup_over_baseline_wall": {}, "speedup_over_baseline_in_process": {}, "details": details}
    for mode in modes:
        sfx = "" if mode == "default" else f", OMP_NUM_THREADS={mode}"
        b = f"baseline (public DFER way){sfx}"
        keys = [f"umbenet prep --media-only{sfx}"] + ([f"umbenet prep (full, tiny CLIP){sfx}"] if full_prep else [])
        if old_tree is not None:
            keys += [f"{k}, before" for k in keys]
        for k in keys:
            res["speedup_over_baseline_wall"][k] = median(times[b]) / median(times[k])
            res["speedup_over_baseline_in_process"][k] = res["times_in_process"][b] / res["times_in_process"][k]
            print(f"  {k}: {median(times[k]):.1f} s wall vs baseline {median(times[b]):.1f} s: "
                  f"x{res['speedup_over_baseline_wall'][k]:.2f} (in-process x{res['speedup_over_baseline_in_process'][k]:.2f})")
    return res


def stages_part(n: int, repeats: int, tmp: Path, threads: str = "default") -> dict:
    import torch
    from rich.console import Console

    from pipelines.media import FaceCropper, extract_audio, probe, read_video_frames
    from pipelines.media_stage import jpeg
    from pipelines.prep import run_prep
    from pipelines.prep_options import PrepOptions
    from umbenet_cli.model.config import UMBEnetConfig

    folder = tmp / f"stages{n}"
    manifest = clip_set(folder, n)
    clips = sorted((folder / "clips").glob("*.mp4"))
    model = UMBEnetConfig.preset("default", backbone=TINY)
    T = model.num_frames
    cropper = FaceCropper(batch_size=64)  # what MediaStage builds
    summaries: list[dict] = []
    alone: list[dict] = []
    counter = {"i": 0}

    def prep():
        counter["i"] += 1
        out = tmp / f"stage-out{counter['i']}"
        opts = PrepOptions(source="manifest", root=manifest, out=out, model=model,
                           source_options={"classes": MAFW_CLASSES})
        s = run_prep(opts, Console(file=io.StringIO(), width=200))
        summaries.append(dict(s.seconds))
        shutil.rmtree(out)
        return s.seconds["total"]

    def decode_faces():
        t0 = time.perf_counter()
        frames, infos = [], []
        for c in clips:
            info = probe(c, require_video=False)
            infos.append(info)
            frames.append(read_video_frames(c, T, info=info).frames)
        t1 = time.perf_counter()
        crops = []
        for s in range(0, len(frames), 16):
            crops += cropper.crop(frames[s:s + 16], "frame")
        t2 = time.perf_counter()
        # prep's other steps, timed alone after the two the target is about
        for c, info in zip(clips, infos):
            extract_audio(c, 16000, info=info)
        t3 = time.perf_counter()
        for fc in crops:
            [jpeg(x) for x in fc.crops]
        t4 = time.perf_counter()
        alone.append({"decode": t1 - t0, "faces": t2 - t1, "audio": t3 - t2, "jpeg": t4 - t3})
        return t2 - t0

    default_threads = torch.get_num_threads()
    if threads != "default":
        torch.set_num_threads(int(threads))
    print(f"prep stages: {n} clips, torch threads {torch.get_num_threads()}, run_prep vs its decoding + face "
          f"detection alone, x {repeats}")
    times = interleave({"run_prep (media + embed, tiny CLIP)": prep, "decode + faces alone": decode_faces}, repeats)
    torch.set_num_threads(default_threads)
    keys = sorted({k for s in summaries for k in s})
    sec = {k: median([s.get(k, 0.0) for s in summaries]) for k in keys}
    al = {k: median([a[k] for a in alone]) for k in alone[0]}
    total, core = median(times["run_prep (media + embed, tiny CLIP)"]), median(times["decode + faces alone"])
    stage_keys = [k for k in keys if ": " in k]
    stage_sum = sum(sec[k] for k in stage_keys)
    res = {
        "clips": n, "T": T, "torch_threads": threads, "repeats": repeats, "times": summarize(times),
        "prep_seconds_median": sec,
        "prep_clips_per_s": {"total": n / sec["total"], "media": n / sec["media"], "embed": n / sec["embed"],
                             **{k: n / sec[k] for k in stage_keys if sec[k] > 0}},
        "prep_stage_share_of_summed_stage_time": {k: sec[k] / stage_sum for k in stage_keys},
        "alone_seconds_median": al,
        "alone_clips_per_s": {k: n / v for k, v in al.items()},
        "ratio_prep_total_over_decode_plus_faces": total / core,
        "ratio_prep_media_stage_over_decode_plus_faces": sec["media"] / core,
        "note": ("prep's per-step times inside a stage are summed over worker threads (decode, audio run in 2 "
                 "threads beside face detection on the main thread), so they add up to more than the wall time"),
    }
    print(f"  run_prep {total:.1f} s ({n / total:.2f} clips/s); decode {al['decode']:.1f} s + faces {al['faces']:.1f} s "
          f"= {core:.1f} s; ratio {total / core:.2f}; audio alone {al['audio']:.1f} s, jpeg alone {al['jpeg']:.1f} s")
    print("  prep summary (median s): " + ", ".join(f"{k} {v:.1f}" for k, v in sec.items()))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--clips", type=int, default=33, help="sample clips for the baseline comparison")
    ap.add_argument("--modes", default="default,1", help="torch threads per process: default and/or 1")
    ap.add_argument("--hd", type=int, default=2, help="MAFW-like 720p clips for a second comparison (0: none)")
    ap.add_argument("--hd-modes", default="1")
    ap.add_argument("--hd-full", action="store_true", help="also full prep on the 720p clips")
    ap.add_argument("--stage-clips", type=int, default=33)
    ap.add_argument("--stage-threads", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--old-tree", type=Path, default=None,
                    help="an export of an earlier commit: its prep runs beside this one (--baseline)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="perf-prep-"))
    try:
        if args.baseline:
            res = {"sample clips": baseline_part(SAMPLE_CLIPS[: args.clips], args.repeats, args.modes.split(","), tmp,
                                                 "sample clips", old_tree=args.old_tree)}
            if args.hd:
                hd = hd_clips(tmp / "hd", args.hd)
                res["MAFW-like 720p clips"] = baseline_part(hd, args.repeats, args.hd_modes.split(","), tmp,
                                                            "MAFW-like 720p clips", full_prep=args.hd_full,
                                                            old_tree=args.old_tree)
            save_section("prep_vs_baseline", res)
        if args.stages:
            res = {}
            for threads in args.stage_threads.split(","):
                res[f"torch threads {threads}"] = stages_part(args.stage_clips, args.repeats, tmp, threads)
            save_section("prep_stages", res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
