"""MAFW five-fold protocol on one H100, projected without a GPU: counted FLOPs, stated utilisation.

``gpu_bench.py`` measures the protocol's costs on a GPU. Where no GPU is lent, this script gives
the compute side of the same projection from exact FLOP counts (``torch.utils.flop_counter``,
run on the CPU with the full-size ViT-B/16 configuration and random weights):

- the image tower per 224 px frame (prep's embed stage), checked against the analytic count of
  ``gpu_bench.vit_flops_per_image``;
- one training step of the library (stage 2, batch 16 x MAFW's 11 classes, the paper's pool:
  L_p 64, N 32, k 5), forward + backward, and the same step with the plain class-prompt pass;
- one eval forward of a batch.

Time = FLOPs / (datasheet bf16 peak x utilisation), for utilisations that bracket what such
workloads reach (the image tower at batch 256 is one large GEMM-bound ViT: 40-60%; a training step
at batch 16 is many small kernels: 5-20%). These are **projections, not measurements**: the
utilisation is an assumption, and the host side (decode, MTCNN on the GPU, data loading) is
only bounded from the CPU decode measured in ``bench_decode.py`` (results.json), spread over the
device machine's cores. ``gpu_bench.py`` on a device replaces every number here.

    python benchmarks/perf/project_flops.py [--epochs 30,100] [--no-save]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _common import MAFW_CLASSES, RESULTS, machine, save_section

MAFW_CLIPS = 10045
T = 16
H100_BF16_PEAK = 989.4e12  # dense bf16, SXM datasheet (FLOP/s)
DEVICE_CORES = 16
LAUNCH_S = (5e-6, 15e-6)  # per op: launch + dispatch of a small kernel, eager PyTorch (range assumed)  # the lent H100 machine; one core left for the main process


def count(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def kernels(fn) -> int:
    """Aten operations dispatched by ``fn`` that do work (views and metadata excluded): about the
    number of GPU kernel launches, each costing ~5-10 us of launch and scheduling whatever its
    size. At batch 16 this, not the FLOPs, sets the floor of a step on an H100."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    free = {torch.Tag.view_copy} if hasattr(torch.Tag, "view_copy") else set()

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not (func.is_view or set(func.tags) & free or func.__name__.split(".")[0] in _NO_KERNEL):
                Count.n += 1
            return out

    with Count():
        fn()
    return Count.n


_NO_KERNEL = {"view", "_unsafe_view", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze", "slice",
              "select", "detach", "alias", "as_strided", "reshape", "_reshape_alias", "split", "unbind",
              "empty", "empty_like", "empty_strided", "lift_fresh", "_to_copy_noop", "sym_size", "is_same_size"}


def measure(tmp: Path) -> dict:
    import torch

    from bench_train import setup
    from gpu_bench import vit_flops_per_image
    from umbenet_cli.training.data import make_batch, step_rng
    from umbenet_cli.training.two_stage import sample_presence

    cfg, model, trainer, _, exact = setup("vitb16", tmp)
    B = cfg.optim.batch_size
    rows = trainer._batches(0)[0]
    present = sample_presence(trainer.available[rows], "subsets", step_rng(0, 2, 0, 0))
    enc = model.class_prompts

    def step():
        trainer._step(rows, present)

    def plain_step():
        enc.shared_prefix = False
        try:
            trainer._step(rows, present)
        finally:
            enc.shared_prefix = True

    batch = make_batch(trainer.table, rows, present, trainer.info.device)

    def evaluate():
        model.eval()
        with torch.no_grad():
            model(batch)
        model.train()

    vcfg = model.backbone.clip.config.vision_config
    pixels = torch.randn(8, 3, vcfg.image_size, vcfg.image_size)

    def tower():
        with torch.no_grad():
            model.backbone.encode_images(pixels)

    t0 = time.perf_counter()
    res = {
        "config": {"backbone": "ViT-B/16 sized CLIP, random weights", "batch": B, "classes": len(cfg.classes),
                   "pool": {"length": cfg.pool.length, "size": cfg.pool.size, "top_k": cfg.pool.top_k},
                   "frames": cfg.num_frames, "audio_seconds": cfg.audio.seconds, "shared_prefix_exact": exact},
        "image_tower_flops_per_frame": count(tower) / len(pixels),
        "image_tower_flops_per_frame_analytic": vit_flops_per_image(vcfg),
        "train_step_flops": count(step),
        "train_step_flops_plain_class_prompts": count(plain_step),
        "eval_batch_flops": count(evaluate),
        "train_step_ops": kernels(step),
        "eval_batch_ops": kernels(evaluate),
    }
    res["count_seconds_on_cpu"] = time.perf_counter() - t0
    return res


def project(c: dict, epochs: list[int], decode_s_per_clip: float | None) -> dict:
    """Hours for MAFW's protocol (5 folds x 2 stages; per fold 4/5 train+val, 10% of it val, 1/5 test)."""
    B = c["config"]["batch"]
    train = MAFW_CLIPS * 4 / 5 * 0.9
    val = MAFW_CLIPS * 4 / 5 * 0.1
    test = MAFW_CLIPS / 5
    out = {"assumptions": (
        f"H100 SXM dense bf16 peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s times the utilisation shown; "
        "every epoch trains on the training clips and evaluates the validation clips, the test fold once per stage; "
        "epochs per stage are not known in advance (plateau and 80% training-accuracy stop): 30 (authors' code) and "
        "100 (the paper's cap); host-side decode on the device machine's other cores, MTCNN on the GPU not counted")}
    extract = MAFW_CLIPS * T * c["image_tower_flops_per_frame"]
    for u in (0.4, 0.6):
        out[f"extraction_minutes_at_{int(u * 100)}pct"] = extract / (H100_BF16_PEAK * u) / 60
    if decode_s_per_clip:
        out["decode_minutes_on_15_cores"] = MAFW_CLIPS * decode_s_per_clip / (DEVICE_CORES - 1) / 60
    for variant, step in (("library", c["train_step_flops"]), ("plain class prompts", c["train_step_flops_plain_class_prompts"])):
        for E in epochs:
            steps = 5 * 2 * E * train / B
            evals = 5 * 2 * (E * val + test) / B
            flops = steps * step + evals * c["eval_batch_flops"]
            for u in (0.05, 0.2):
                out[f"train_hours {variant}, {E} epochs, FLOPs at {int(u * 100)}% utilisation"] = (
                    flops / (H100_BF16_PEAK * u) / 3600)
            if variant == "library":
                ops = steps * c["train_step_ops"] + evals * c["eval_batch_ops"]
                for t in LAUNCH_S:
                    out[f"train_hours {variant}, {E} epochs, launch floor at {t * 1e6:.0f} us per op"] = ops * t / 3600
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", default="30,100")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    import torch

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="perf-flops-"))
    try:
        counts = measure(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    decode = None
    if RESULTS.exists():
        d = json.loads(RESULTS.read_text()).get("decode", {}).get("MAFW-like 720p 25 fps 5 s")
        if d:
            decode = d["times"]["decode_clip, audio joint (prep)"]["median_s"] / d["clips"]
    res = {"machine": machine(), "counts": counts,
           "projection": project(counts, [int(e) for e in args.epochs.split(",")], decode),
           "decode_s_per_clip_measured_cpu": decode}
    print(json.dumps(res["counts"], indent=1))
    for k, v in res["projection"].items():
        print(f"  {k}: {v if isinstance(v, str) else round(v, 3)}")
    if not args.no_save:
        save_section("flops_projection", res)


if __name__ == "__main__":
    main()
