"""The GPU half of the performance suite. Skips (exit 0, one clear line) when CUDA is absent.

What it measures, on ``--device`` (default cuda:0), with random-weight CLIPs of the real widths
(``_common.random_clip``; pass ``--backbone /path/to/clip`` to use a real local checkpoint):

1. bf16 bound of the card: a large bf16 matmul (TFLOP/s actually reachable), next to the
   datasheet dense bf16 peak when the card is known (``--peak-tflops`` to give it).
2. CLIP feature extraction (prep's embed stage): the image tower in bf16 autocast, batches of 256
   preprocessed 224x224 frames, frames/s and achieved TFLOP/s against both bounds; then prep's
   whole ``EmbedStage`` (JPEG decode + preprocessing + tower) on a media table of sample clips.
3. Face detection on the GPU: MTCNN batched (64) against one call per frame.
4. Prep end to end on the GPU: ``run_prep`` media-only and full, clips/s (``--workers`` decode
   threads, default 8).
5. Training: a stage-2 step (``StageTrainer._step``, bf16 autocast) for the ``default`` preset
   (ViT-B/16) and the ``paper`` preset (ViT-L/14), batch 16, MAFW's 11 classes: steps/s, clips/s,
   peak memory, the share of the class-prompt pass, and the same step with the plain class-prompt
   pass forced (every (clip, class) pair its own sequence: the library before the shared prefix).
6. Projection of the full MAFW five-fold protocol (10,045 clips) on this GPU from the measured
   rates: prep, then per epoch, and totals for 30 and 100 epochs per stage, two stages, five folds.

Results go to results.json under "gpu". ``--smoke`` runs the same code on the CPU at toy sizes
(to check the script where there is no GPU; its numbers mean nothing).

    python benchmarks/perf/gpu_bench.py [--device cuda:0] [--peak-tflops 989]
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import MAFW_CLASSES, SAMPLE_CLIPS, clip_set, median, save_section

MAFW_CLIPS = 10045
# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, without sparsity).
PEAK_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4,
                    "A100": 312.0, "L40S": 362.1, "A10": 125.0, "L4": 121.0}


def vit_flops_per_image(cfg) -> float:
    """Forward FLOPs (2 x multiply-adds) of a CLIP image tower for one image."""
    n = (cfg.image_size // cfg.patch_size) ** 2 + 1
    d, f, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * f
    patch = (n - 1) * 3 * cfg.patch_size ** 2 * d
    return 2.0 * (L * per_layer + patch)


def timed(fn, sync, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--backbone", default=None, help="a local CLIP folder instead of the random ViT-B/16")
    ap.add_argument("--clips", type=int, default=64, help="clips for the prep measurements")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--train-configs", default="vitb16,vitl14")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes: checks the script only")
    args = ap.parse_args()

    import torch

    if args.smoke:
        args.device, args.clips, args.repeats, args.train_configs, args.workers = "cpu", 2, 1, "tiny", 2
    elif not torch.cuda.is_available():
        print("gpu_bench: no CUDA device visible (torch.cuda.is_available() is False): skipped. "
              "Run it on a machine with a GPU: .venv/bin/python benchmarks/perf/gpu_bench.py")
        return
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu (smoke)"
    res: dict = {"device": name, "smoke": args.smoke}
    peak = args.peak_tflops
    if peak is None:
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k.lower() in name.lower()), None)
    res["datasheet_peak_bf16_tflops"] = peak
    print(f"gpu_bench on {name}")

    # 1. bf16 matmul bound
    n = 8192 if cuda else 256
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    timed(lambda: a @ b, sync, 3)
    t = timed(lambda: a @ b, sync, args.repeats * 4)
    res["matmul_bf16_tflops"] = 2 * n ** 3 / t / 1e12
    print(f"  bf16 matmul {n}^3: {res['matmul_bf16_tflops']:.0f} TFLOP/s (datasheet {peak})")
    del a, b

    # 2. CLIP image tower
    from _common import random_clip
    from umbenet_cli.model.backbone import load_backbone

    bb_name = args.backbone or ("umbenet/tiny-random-clip" if args.smoke else str(random_clip("b16")))
    backbone = load_backbone(bb_name, device=dev)
    vcfg = backbone.clip.config.vision_config
    flops = vit_flops_per_image(vcfg)
    batch = 256 if cuda else 4
    pixels = torch.randn(batch, 3, vcfg.image_size, vcfg.image_size, device=dev)

    def tower():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            backbone.encode_images(pixels)

    timed(tower, sync, 2)
    t = timed(tower, sync, args.repeats)
    fps = batch / t
    res["image_tower"] = {"backbone": bb_name, "batch": batch, "frames_per_s": fps, "gflop_per_frame": flops / 1e9,
                          "achieved_tflops": fps * flops / 1e12,
                          "fraction_of_matmul_bound": fps * flops / 1e12 / res["matmul_bf16_tflops"],
                          "fraction_of_datasheet_peak": fps * flops / 1e12 / peak if peak else None,
                          "frames_per_s_bound_datasheet": peak * 1e12 / flops if peak else None,
                          "frames_per_s_bound_matmul": res["matmul_bf16_tflops"] * 1e12 / flops}
    print(f"  image tower: {fps:.0f} frames/s = {fps * flops / 1e12:.0f} TFLOP/s "
          f"({100 * res['image_tower']['fraction_of_matmul_bound']:.0f}% of the matmul bound)")

    from rich.console import Console

    from pipelines.embed_stage import EmbedStage
    from pipelines.media import FaceCropper, read_video_frames
    from pipelines.prep import run_prep
    from pipelines.prep_options import PrepOptions
    from umbenet_cli.data.cache_io import iter_media
    from umbenet_cli.model.config import UMBEnetConfig

    tmp = Path(tempfile.mkdtemp(prefix="perf-gpu-"))
    try:
        manifest = clip_set(tmp / "set", args.clips)
        model_cfg = UMBEnetConfig.preset("default", backbone=bb_name)

        def prep(stages, out):
            opts = PrepOptions(source="manifest", root=manifest, out=out, model=model_cfg, device=args.device,
                               workers=args.workers, source_options={"classes": MAFW_CLASSES}, stages=stages)
            t0 = time.perf_counter()
            s = run_prep(opts, Console(file=io.StringIO(), width=200))
            return time.perf_counter() - t0, dict(s.seconds)

        # 4. prep end to end (media first: its table is reused for the embed stage timing)
        t_media, sec_media = prep(("media",), tmp / "cache")
        t_full, sec_full = prep(("media", "embed"), tmp / "cache-full")
        res["prep"] = {"clips": args.clips, "workers": args.workers,
                       "media_only_clips_per_s": args.clips / t_media, "full_clips_per_s": args.clips / t_full,
                       "media_only_seconds": sec_media, "full_seconds": sec_full}
        print(f"  prep: media-only {args.clips / t_media:.1f} clips/s, full {args.clips / t_full:.1f} clips/s")

        parts = list(iter_media(tmp / "cache"))
        todo = {c for p in parts for c in p.clip_ids}
        n_frames = sum(len(p.crops[i]) for p in parts for i in range(len(p)) if p.crops[i].is_valid)

        def embed():
            st = EmbedStage(backbone, args.device, 256, False)
            for p in parts:
                st.run(p, todo, lambda row: None, lambda k: None)
            return st.seconds

        embed()
        t = timed(embed, sync, max(2, args.repeats // 2))
        res["embed_stage"] = {"frames": n_frames, "frames_per_s": n_frames / t, "clips_per_s": len(todo) / t,
                              "fraction_of_tower_only_rate": (n_frames / t) / fps}
        print(f"  embed stage: {n_frames / t:.0f} frames/s end to end ({100 * n_frames / t / fps:.0f}% of the tower alone)")

        # 3. MTCNN on the GPU
        frames = [read_video_frames(p, 16).frames for p in SAMPLE_CLIPS[:16 if cuda else 2]]
        nf = sum(len(f) for f in frames)
        mt = {}
        for bsz in (1, 64):
            fc = FaceCropper(device=args.device, batch_size=bsz)
            fc.crop(frames)
            mt[f"batch {bsz}"] = nf / timed(lambda: fc.crop(frames), sync, max(2, args.repeats // 2))
        res["mtcnn_frames_per_s"] = mt
        print(f"  MTCNN: {mt}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    del backbone
    if cuda:
        torch.cuda.empty_cache()

    # 5. training
    from bench_train import bench

    res["train"] = {}
    tmp = Path(tempfile.mkdtemp(prefix="perf-gpu-train-"))
    try:
        for config in args.train_configs.split(","):
            res["train"][config] = bench(config, args.repeats, 2, tmp, device=args.device)
            if cuda:
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # 6. projection of MAFW's five-fold protocol (assumptions stated in the result)
    proj = {"clips": MAFW_CLIPS, "assumptions": (
        "5 folds; per fold 4/5 of the clips train+val (val 10% of them), 1/5 test; two stages; every epoch trains "
        "on the training clips and evaluates the validation clips at the measured eval rate (of the library, or "
        "of the plain class-prompt pass for that row); test evaluation once per stage; data loading not counted "
        "(the cache is in memory); epochs per stage unknown in advance (plateau "
        "and 80% training-accuracy stop), so 30 (authors' code) and 100 (paper's cap) are shown")}
    prep_rate = res["prep"]["full_clips_per_s"]
    proj["prep_hours"] = MAFW_CLIPS / prep_rate / 3600
    for config, r in res["train"].items():
        train_clips = MAFW_CLIPS * 4 / 5 * 0.9
        val_clips = MAFW_CLIPS * 4 / 5 * 0.1
        test_clips = MAFW_CLIPS / 5
        ev = r["eval_clips_per_s"]
        for variant, rate, ev_rate in (("library", r["clips_per_s"], ev),
                                       ("plain class prompts", r["plain"]["clips_per_s"], r["plain"]["eval_clips_per_s"])):
            epoch = train_clips / rate + val_clips / ev_rate
            per = {"epoch_s": epoch}
            for E in (30, 100):
                per[f"hours_5_folds_2_stages_{E}_epochs"] = 5 * 2 * (E * epoch + test_clips / ev_rate) / 3600
            proj[f"{config} ({variant})"] = per
    res["projection_mafw_5_fold"] = proj
    # The GPU targets: extraction at >= 40% of the bf16 bound; the whole five-fold
    # protocol projected under 1 h on one H100.
    it = res["image_tower"]
    res["targets"] = {
        "clip_extraction_fraction_of_bf16_bound": {
            "datasheet": it["fraction_of_datasheet_peak"], "matmul": it["fraction_of_matmul_bound"],
            "embed_stage_end_to_end_datasheet": (res["embed_stage"]["frames_per_s"] * flops / 1e12 / peak) if peak else None,
            "target": 0.4},
        "mafw_5_fold_hours": {k: {"train_30_epochs": v["hours_5_folds_2_stages_30_epochs"],
                                  "with_prep": v["hours_5_folds_2_stages_30_epochs"] + proj["prep_hours"]}
                              for k, v in proj.items() if isinstance(v, dict)},
        "target_hours": 1.0,
    }
    print(f"  projection: {proj}")
    if not args.smoke:
        save_section("gpu", res)
    else:
        print("smoke run: nothing saved")


if __name__ == "__main__":
    sys.exit(main())
