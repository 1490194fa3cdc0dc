"""Training speed on the CPU: a whole step against the class-prompt pass through the text tower.

A "step" is ``StageTrainer._step`` itself (batch from the feature table, forward, loss, backward,
grad clipping, Adam step), on a synthetic feature cache with the model's shapes, in stage-2 mode
(random modality subsets). The class-prompt pass alone is ``ClassPromptEncoder.forward`` on
random P' [B, L_p, D_tok] plus its backward (gradients to P' and the inherent prompts), the work
the text tower does inside a step. Variants alternate, repeated; medians and ratios are reported.

The library's class-prompt pass shares the prefix ([SOS], P', inherent prompts) across a clip's
classes (``ClassPromptEncoder.forward_shared``). The reference is the plain way,
``ClassPromptEncoder.forward_plain``: B x C full sequences through the text tower ("class prompts
fwd+bwd the plain way", the issue's "class prompts through the text tower alone"); the step
target ``ratio_step_over_class_prompts`` = library step / that reference. The step (and the eval
forward) are also timed with the plain pass forced (``shared_prefix = False``: the library before
the change), and the two passes are checked equal first (``prefix_share.check_equal``).

A forward pass in eval mode (no gradients) of one batch is timed too (validation and test cost).
What else a step does is timed the same way: the three encoders (``model.encode``) forward and
backward, and the audio encoder alone (a 1-D CNN over 8 s of 16 kHz waveform per clip).

Configurations:
- ``vitb16``: a ViT-B/16-sized CLIP (text tower 512 wide, 12 layers, 77 positions, vocabulary
  49,408; random weights), preset ``default`` (the paper's pool: L_p 64, N 32, k 5), batch 16,
  MAFW's 11 classes, T 16, 8 s audio.
- ``tiny``: the ``tiny`` preset (batch 4, L_p 4, N 6, k 2) on the offline tiny CLIP.

    python benchmarks/perf/bench_train.py [--configs vitb16,tiny] [--repeats 3] [--warmup 1] [--threads 1] [--no-save]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import MAFW_CLASSES, interleave, median, save_section, summarize, vitb16_backbone, vitl14_backbone


def backbone_for(config: str) -> tuple[str, str]:
    """(backbone folder or id, preset) of a benchmark configuration."""
    if config == "vitb16":
        return str(vitb16_backbone()), "default"
    if config == "vitl14":
        return str(vitl14_backbone()), "paper"
    return "umbenet/tiny-random-clip", "tiny"


def setup(config: str, tmp: Path, device: str = "cpu", batch: int | None = None):
    import torch

    from prefix_share import check_equal
    from umbenet_cli.data.cache_read import read_features
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model.backbone import load_backbone
    from umbenet_cli.model.config import UMBEnetConfig
    from umbenet_cli.model.umbenet import UMBEnet
    from umbenet_cli.training.data import make_splits
    from umbenet_cli.training.distributed import DistInfo
    from umbenet_cli.training.loop import StageTrainer

    name, preset = backbone_for(config)
    cfg = UMBEnetConfig.preset(preset, backbone=name, **({"optim.batch_size": batch} if batch else {}))
    backbone = load_backbone(name, device=device)
    spec = SyntheticSpec(classes=MAFW_CLASSES, clips_per_class=max(4, 3 * cfg.optim.batch_size // len(MAFW_CLASSES) + 2),
                         num_frames=cfg.num_frames, embed_dim=backbone.dims.embed_dim,
                         audio_seconds=cfg.audio.seconds, sample_rate=cfg.audio.sample_rate)
    cache = write_synthetic_cache(tmp / f"cache-{config}", spec, name, backbone.fingerprint())
    table = read_features(cache)
    splits = make_splits(table, 1, 0.1, 0)
    torch.manual_seed(0)
    model = UMBEnet(cfg, backbone=backbone).to(device)
    trainer = StageTrainer(model, table, splits, table.presence.copy(), "subsets", "stage2", tmp / f"run-{config}",
                           seed=0, info=DistInfo(device=torch.device(device)))
    model.train()
    B = cfg.optim.batch_size
    L_p, D = (cfg.pool.length if cfg.pool.enabled else 0), backbone.dims.token_dim
    torch.manual_seed(1)
    p_prime = torch.randn(B, L_p, D, device=device) * 0.02
    exact = check_equal(model.class_prompts, p_prime)
    return cfg, model, trainer, p_prime, exact


def bench(config: str, repeats: int, warmup: int, tmp: Path, device: str = "cpu", eval_forward: bool = True,
          extras: bool = True, batch: int | None = None) -> dict:
    import torch

    from prefix_share import positions
    from umbenet_cli.training.data import step_rng
    from umbenet_cli.training.two_stage import sample_presence

    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    cfg, model, trainer, p_prime, exact = setup(config, tmp, device, batch)
    enc = model.class_prompts
    batches = trainer._batches(0)
    counter = {"i": 0}

    def step():
        rows = batches[counter["i"] % len(batches)]
        counter["i"] += 1
        present = sample_presence(trainer.available[rows], "subsets", step_rng(0, 2, 0, counter["i"]))
        sync()
        t0 = time.perf_counter()
        trainer._step(rows, present)
        sync()
        return time.perf_counter() - t0

    shared = enc.shared_prefix  # the library's choice for this tower

    def prompts(fn):
        def run():
            p = p_prime.clone().requires_grad_(True)
            sync()
            t0 = time.perf_counter()
            with autocast():
                e = fn(p)
            e.float().sum().backward()
            sync()
            dt = time.perf_counter() - t0
            enc.inherent.grad = None
            return dt
        return run

    def plain(fn):
        """``fn`` with the library's plain class-prompt pass (B x C full sequences) forced."""
        def run():
            enc.shared_prefix = False
            try:
                return fn()
            finally:
                enc.shared_prefix = shared
        return run

    from umbenet_cli.training.data import make_batch

    rows0 = batches[0]
    batch0 = make_batch(trainer.table, rows0, sample_presence(trainer.available[rows0], "subsets", step_rng(0, 2, 0, 0)),
                        trainer.info.device)

    def encoders():
        sync()
        t0 = time.perf_counter()
        with autocast():
            streams = model.encode(batch0)
        sum(v.float().sum() for v in streams.values()).backward()
        sync()
        dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return dt

    def audio():
        sync()
        t0 = time.perf_counter()
        with autocast():
            f = model.audio(batch0.audio, batch0.audio_len)
        f.float().sum().backward()
        sync()
        dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return dt

    def evaluate():
        model.eval()
        sync()
        t0 = time.perf_counter()
        with torch.no_grad(), autocast():
            model(batch0)
        sync()
        dt = time.perf_counter() - t0
        model.train()
        return dt

    STEP, PROMPTS, REF = "training step", "class prompts fwd+bwd alone", "class prompts fwd+bwd the plain way"
    STEP_PLAIN, EVAL, EVAL_PLAIN = ("training step, plain class prompts", "eval forward of a batch (no grad)",
                                    "eval forward of a batch, plain class prompts")
    variants = {STEP: step, PROMPTS: prompts(enc.forward), REF: prompts(enc.forward_plain), STEP_PLAIN: plain(step)}
    B, C = cfg.optim.batch_size, len(cfg.classes)
    pos = positions(enc, B)
    print(f"train {config}: batch {B} x {C} classes, L_p {cfg.pool.length}, N {cfg.pool.size}, k {cfg.pool.top_k}, "
          f"T {cfg.num_frames}, text tower width {model.backbone.dims.token_dim}, {torch.get_num_threads()} threads; "
          f"library class prompts: {'shared prefix' if shared else 'plain (tower layout not supported)'}; "
          f"tower positions per pass {pos}; exactness {exact}")
    if extras:
        variants["encoders fwd+bwd alone (model.encode)"] = encoders
        variants["audio encoder fwd+bwd alone"] = audio
    if eval_forward:
        variants[EVAL] = evaluate
        variants[EVAL_PLAIN] = plain(evaluate)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = interleave(variants, repeats, warmup=warmup)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    s, p, ref, s_plain = (median(times[k]) for k in (STEP, PROMPTS, REF, STEP_PLAIN))
    seq_len = int(enc.eos_pos.max() + 1)
    res = {
        "batch": B, "classes": C, "pool": {"length": cfg.pool.length, "size": cfg.pool.size, "top_k": cfg.pool.top_k},
        "text_tower": {"width": model.backbone.dims.token_dim,
                       "layers": model.backbone.text_model.config.num_hidden_layers,
                       "sequence_positions_per_class_prompt": seq_len,
                       "positions_per_class_prompt_pass": pos},
        "device": device, "threads": torch.get_num_threads(), "repeats": repeats, "warmup": warmup,
        "library_class_prompts": "shared prefix" if shared else "plain",
        "times": summarize(times),
        "peak_gpu_memory_gib_all_variants": peak,
        # The library (shared-prefix class prompts).
        "steps_per_s": 1 / s, "clips_per_s": B / s,
        "eval_clips_per_s": B / median(times[EVAL]) if eval_forward else None,
        "class_prompt_share_of_step": p / s,
        # The target: the step against the class prompts through the text tower the plain way.
        "ratio_step_over_class_prompts": s / ref,
        "ratio_step_over_library_class_prompts": s / p,
        "everything_else_s": s - p,
        "everything_else_breakdown_s": {
            "encoders fwd+bwd (of which audio)": [median(times["encoders fwd+bwd alone (model.encode)"]),
                                                  median(times["audio encoder fwd+bwd alone"])],
            "rest (fusion, pool, SFF, loss, optimiser, bookkeeping)":
                s - p - median(times["encoders fwd+bwd alone (model.encode)"])} if extras else None,
        # The plain class-prompt pass forced (the library before the shared prefix), and the gains.
        "plain": {"steps_per_s": 1 / s_plain, "clips_per_s": B / s_plain,
                  "eval_clips_per_s": B / median(times[EVAL_PLAIN]) if eval_forward else None,
                  "class_prompt_share_of_step": ref / s_plain, "ratio_step_over_class_prompts": s_plain / ref},
        "shared_prefix": {"speedup_step": s_plain / s, "speedup_class_prompts": ref / p,
                          "speedup_eval": median(times[EVAL_PLAIN]) / median(times[EVAL]) if eval_forward else None,
                          "exactness": exact},
    }
    print(f"  library: step {s:.3f} s ({B / s:.2f} clips/s), class prompts {p:.3f} s ({100 * p / s:.0f}% of the step); "
          f"the plain way: class prompts {ref:.3f} s (x{ref / p:.2f}), step {s_plain:.3f} s (x{s_plain / s:.2f}); "
          f"step / plain class prompts {s / ref:.2f} (target <= 1.3)")
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="vitb16,tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tiny-repeats", type=int, default=15)
    ap.add_argument("--no-eval", action="store_true", help="skip timing the evaluation forward pass")
    ap.add_argument("--no-extras", action="store_true", help="skip timing the encoders alone")
    ap.add_argument("--batch", type=int, default=None, help="override the preset's batch size (vitb16)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--no-save", action="store_true", help="print only; leave results.json alone")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="perf-train-"))
    out = {}
    try:
        for config in args.configs.split(","):
            reps = args.tiny_repeats if config == "tiny" else args.repeats
            out[config] = bench(config, reps, max(args.warmup, 2) if config == "tiny" else args.warmup, tmp,
                                eval_forward=not args.no_eval, extras=not args.no_extras,
                                batch=args.batch if config != "tiny" else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_save:
        save_section("train", out)


if __name__ == "__main__":
    main()
