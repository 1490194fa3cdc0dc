"""The class-prompt pass alone: the library's shared-prefix pass against the plain way, and its exactness.

``ClassPromptEncoder`` (``umbenet_cli/model/class_prompts.py``) runs the positions every class of a
clip shares ([SOS], P'_b, P_inherent) once per clip, with the class suffixes packed after them
(finding 1 of README.md, now library code). ``forward_plain`` is the plain way, kept as the
reference: every (clip b, class c) pair as its own sequence through the text tower,

    [SOS] P'_b (L_p) ; P_inherent (L_i) ; class c tokens ; [EOS]        (B x C sequences)

With the paper's pool (L_p 64, L_i 4) and MAFW's 11 classes a batch of 16 pushes 16 x (69 + 36)
= 1,680 positions through the tower instead of 176 x 74 = 13,024.

``check_equal`` compares the two (outputs, and the gradients that train P' and the inherent
prompts); ``bench_train.py`` uses it. Run alone, this script times the pass, forward + backward
of a random linear loss, both ways, alternated and repeated, on the offline tiny CLIP and on a
random-weight CLIP of ViT-B/16's text width (nothing is saved to results.json):

    python benchmarks/perf/prefix_share.py [--configs tiny,vitb16] [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import torch


def check_equal(enc, pool_prompts: torch.Tensor) -> dict:
    """Max |difference| of outputs and of gradients (wrt P' and the inherent prompts) between the
    plain pass and the library's shared-prefix pass, for a random downstream loss."""
    out, grads = {}, {}
    w = None
    for name, fn in (("plain", enc.forward_plain), ("shared prefix", enc.forward_shared)):
        p = pool_prompts.detach().clone().requires_grad_(True)
        enc.inherent.grad = None
        e = fn(p)
        if w is None:
            w = torch.randn(e.shape, generator=torch.Generator().manual_seed(0)).to(e.device)
        (e.float() * w).sum().backward()
        out[name] = e.detach()
        grads[name] = (p.grad.detach().clone(), enc.inherent.grad.detach().clone())
    enc.inherent.grad = None
    return {
        "library_uses_shared_prefix": bool(enc.shared_prefix),
        "max_abs_diff_embeddings": float((out["plain"] - out["shared prefix"]).abs().max()),
        "max_abs_diff_grad_pool_prompts": float((grads["plain"][0] - grads["shared prefix"][0]).abs().max()),
        "max_abs_grad_pool_prompts": float(grads["plain"][0].abs().max()),
        "max_abs_diff_grad_inherent": float((grads["plain"][1] - grads["shared prefix"][1]).abs().max()),
        "max_abs_grad_inherent": float(grads["plain"][1].abs().max()),
    }


def positions(enc, batch: int) -> dict:
    """Positions through the tower per pass: the plain way and the shared prefix."""
    n_ctx = enc.pool_length + enc.inherent.shape[0]
    C = enc.eos_pos.shape[0]
    return {"plain": batch * C * int(enc.eos_pos.max() + 1),
            "shared_prefix": batch * (1 + n_ctx + enc.packed.shape[0])}


def main() -> None:
    from _common import MAFW_CLASSES, interleave, median, vitb16_backbone
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.class_prompts import ClassPromptEncoder
    from umbenet_cli.model.config import TINY_BACKBONE, UMBEnetConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="tiny,vitb16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for config in args.configs.split(","):
        name, preset = (TINY_BACKBONE, "tiny") if config == "tiny" else (str(vitb16_backbone()), "default")
        cfg = UMBEnetConfig.preset(preset, backbone=name)
        backbone = load_backbone(name)
        torch.manual_seed(0)
        L_p = cfg.pool.length if cfg.pool.enabled else 0
        enc = ClassPromptEncoder(backbone, MAFW_CLASSES, cfg.class_descriptions, L_p, cfg.inherent_length)
        B = cfg.optim.batch_size
        p0 = 0.02 * torch.randn(B, L_p, backbone.dims.token_dim)
        exact = check_equal(enc, p0)

        def timed(fn):
            def run():
                p = p0.clone().requires_grad_(True)
                t0 = time.perf_counter()
                fn(p).sum().backward()
                dt = time.perf_counter() - t0
                enc.inherent.grad = None
                return dt
            return run

        times = interleave({"plain way": timed(enc.forward_plain), "shared prefix (library)": timed(enc.forward_shared)},
                           args.repeats, warmup=args.warmup)
        plain, shared = median(times["plain way"]), median(times["shared prefix (library)"])
        print(f"{config}: batch {B} x {len(MAFW_CLASSES)} classes, L_p {L_p}, L_i {cfg.inherent_length}, text width "
              f"{backbone.dims.token_dim}, {torch.get_num_threads()} threads; positions {positions(enc, B)}\n"
              f"  class prompts fwd+bwd: plain way {plain:.4f} s, shared prefix {shared:.4f} s: x{plain / shared:.2f}\n"
              f"  exactness {exact}")


if __name__ == "__main__":
    main()
