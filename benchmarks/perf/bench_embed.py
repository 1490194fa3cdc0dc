"""prep's embed stage on the CPU with a ViT-B/16-sized CLIP (random weights): frames/s, clips/s.

The media table of N clips is made once (``run_prep`` media stage, T 16); then prep's own
``EmbedStage`` embeds it (JPEG decode, CLIP image tower over the 16 crops per clip in batches of
256 frames, text tower over the captions), rows discarded, repeated. Also the one-off cost of
loading the backbone, and the CPU-side work per frame before the tower (JPEG decode, serial and
with EmbedStage's thread pool, and ``Backbone.preprocess``, now and as it was before the
same-size resize was skipped), which bounds the embed stage on a GPU. The stage's "image tower"
seconds no longer include preprocessing (its own "preprocess" entry).
The embed time per clip is the cost that full prep adds to ``--media-only`` on a CPU.

    python benchmarks/perf/bench_embed.py [--clips 8] [--repeats 2]
"""
from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import MAFW_CLASSES, clip_set, interleave, median, save_section, summarize, vitb16_backbone


def _old_preprocess(frames, s: int):
    """Backbone.preprocess before finding 5's fix (always resized), for the side-by-side number."""
    import torch
    import torch.nn.functional as F

    from umbenet_cli.model.backbone import CLIP_MEAN, CLIP_STD

    x = torch.as_tensor(frames)
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    scale = s / min(h, w)
    nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - s) // 2, (nw - s) // 2
    x = x[..., top:top + s, left:left + s].clamp(0, 1)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from rich.console import Console

    from pipelines.embed_stage import EmbedStage
    from pipelines.prep import run_prep
    from pipelines.prep_options import PrepOptions
    from umbenet_cli.data.cache_io import iter_media
    from umbenet_cli.model.backbone import load_backbone
    from umbenet_cli.model.config import UMBEnetConfig

    name = str(vitb16_backbone())
    tmp = Path(tempfile.mkdtemp(prefix="perf-embed-"))
    try:
        manifest = clip_set(tmp / "set", args.clips)
        opts = PrepOptions(source="manifest", root=manifest, out=tmp / "cache",
                           model=UMBEnetConfig.preset("default", backbone=name),
                           source_options={"classes": MAFW_CLASSES}, stages=("media",))
        run_prep(opts, Console(file=io.StringIO()))
        t0 = time.perf_counter()
        backbone = load_backbone(name)
        load_s = time.perf_counter() - t0
        parts = list(iter_media(tmp / "cache"))
        todo = {c for p in parts for c in p.clip_ids}
        n_frames = sum(len(p.crops[i]) for p in parts for i in range(len(p)) if p.crops[i].is_valid)
        n_texts = sum(1 for p in parts for t in p.meta.column("text").to_pylist() if t is not None)
        stages = []

        def embed():
            stage = EmbedStage(backbone, "cpu", opts.embed_batch, False)
            t = time.perf_counter()
            for p in parts:
                stage.run(p, todo, lambda row: None, lambda n: None)
            stage.close()
            stages.append(dict(stage.seconds))
            return time.perf_counter() - t

        print(f"embed: {args.clips} clips, {n_frames} frames, {n_texts} texts, ViT-B/16-sized CLIP on the CPU")
        times = interleave({"embed stage (ViT-B/16, CPU)": embed}, args.repeats, warmup=0)
        # The CPU-side work per frame that EmbedStage does before the tower (JPEG decode, then
        # Backbone.preprocess, both on the CPU even when --device is a GPU): it bounds the embed
        # stage's rate on any GPU, whatever the tower's speed.
        from concurrent.futures import ThreadPoolExecutor

        from pipelines.embed_stage import _decode_jpeg, _decode_jpegs

        jpegs = [p.crops[i].as_py() for p in parts for i in range(len(p)) if p.crops[i].is_valid]
        flat_jpegs = [b for j in jpegs for b in j]
        tj, tjp, tp, tpo = [], [], [], []
        with ThreadPoolExecutor(EmbedStage(backbone, "cpu", 256, False).jpeg_threads) as pool:
            for _ in range(3):
                t0 = time.perf_counter()
                decoded = [_decode_jpegs(j) for j in jpegs]
                tj.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                list(pool.map(_decode_jpeg, flat_jpegs))
                tjp.append(time.perf_counter() - t0)
                flat = np.concatenate(decoded)
                t0 = time.perf_counter()
                for s0 in range(0, len(flat), 256):
                    backbone.preprocess(flat[s0:s0 + 256])
                tp.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for s0 in range(0, len(flat), 256):
                    _old_preprocess(flat[s0:s0 + 256], backbone.dims.image_size)
                tpo.append(time.perf_counter() - t0)
        t_jpeg, t_pre = median(tj), median(tp)
        cpu_side = {"jpeg_decode_ms_per_frame": 1000 * t_jpeg / len(flat),
                    "jpeg_decode_pool_ms_per_frame": 1000 * median(tjp) / len(flat),
                    "preprocess_ms_per_frame": 1000 * t_pre / len(flat),
                    "preprocess_before_ms_per_frame": 1000 * median(tpo) / len(flat),
                    "cpu_bound_frames_per_s_one_core": len(flat) / (t_jpeg + t_pre)}
        print(f"  CPU side per frame: JPEG decode {cpu_side['jpeg_decode_ms_per_frame']:.2f} ms "
              f"({cpu_side['jpeg_decode_pool_ms_per_frame']:.2f} ms with EmbedStage's thread pool), preprocess "
              f"{cpu_side['preprocess_ms_per_frame']:.2f} ms (before the same-size resize was skipped: "
              f"{cpu_side['preprocess_before_ms_per_frame']:.2f} ms) -> at most "
              f"{cpu_side['cpu_bound_frames_per_s_one_core']:.0f} frames/s on one core")
        sec = {k: median([s[k] for s in stages]) for k in stages[0]}
        total = median(times["embed stage (ViT-B/16, CPU)"])
        res = {"clips": args.clips, "frames": n_frames, "texts": n_texts, "repeats": args.repeats,
               "times": summarize(times), "stage_seconds_median": sec, "load_backbone_s": load_s,
               "image_tower_frames_per_s": n_frames / sec["image tower"],
               "text_tower_texts_per_s": n_texts / sec["text tower"] if sec.get("text tower") else None,
               "clips_per_s": args.clips / total, "s_per_clip": total / args.clips, "cpu_side_before_tower": cpu_side}
        print(f"  {n_frames / sec['image tower']:.1f} frames/s in the image tower, {args.clips / total:.2f} clips/s "
              f"({total / args.clips:.2f} s per clip); backbone load {load_s:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_section("embed_vitb16_cpu", res)


if __name__ == "__main__":
    main()
