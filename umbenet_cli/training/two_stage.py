"""Two-stage training as the paper states it (section 3.4, with the schedule of section 4.1).

This module is the one home of the training *method*; ``training.loop`` runs the mechanics
(batches, devices, checkpoints, logging) and asks this module what to do.

1. What each stage presents to the model (``STAGE_MODES``, ``sample_presence``)

   stage 1    "the system inputs audio (A), visual (V), and textual (T) modalities separately":
              each clip of a batch presents one modality, drawn uniformly among those it has;
              the other two are masked, so prompts specialise per modality.
   stage 2    "training with randomly missing modal information": each clip presents a uniform
              random non-empty subset of the modalities it has.
   onestage   the ablation of Table 4 (bottom): stage 2's presentation from a fresh model.

2. How the pool passes from stage 1 to stage 2 (``build_stage_model``, ``transfer_activated``)

   "prompts that were activated in the first stage are transferred to a new Prompt Pool": stage 2
   loads stage 1's best checkpoint (every weight), builds a new pool, copies the activated prompts
   (key and value) into it, most used first, and leaves the rest freshly initialised. Stage 2's
   ``init.json`` records what was carried.

3. The schedule and the stopping rules (``make_optimizer``, ``make_scheduler``, ``stop_reason``)

   Adam at the preset's lr; when the validation loss has not decreased for ``plateau_patience``
   epochs the lr is multiplied by ``plateau_factor``; training stops when the lr falls below
   ``min_lr`` or training accuracy passes ``stop_train_accuracy`` (or after ``max_epochs``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from umbenet_cli.model.checkpoint import load_weights
from umbenet_cli.model.config import OptimConfig
from umbenet_cli.model.prompt_pool import PromptPool
from umbenet_cli.model.umbenet import UMBEnet
from umbenet_cli.training.options import TrainError, TrainOptions

# ----------------------------------------------------------------- 1. what each stage presents
STAGE_MODES = {"stage1": "unimodal", "stage2": "subsets", "onestage": "subsets"}
STAGE_IDS = {"stage1": 1, "stage2": 2, "onestage": 3}  # keys of the per-stage random streams


def sample_presence(available: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """available [B, 3] bool -> presented [B, 3] bool.

    mode "unimodal" (stage 1): one modality per clip, uniformly among those it has.
    mode "subsets" (stage 2, one-stage): a uniform non-empty subset of those it has.
    mode "all": everything it has (validation, evaluation).
    """
    if mode == "all":
        return available.copy()
    out = np.zeros_like(available)
    for i, row in enumerate(available):
        have = np.flatnonzero(row)
        if mode == "unimodal":
            out[i, rng.choice(have)] = True
        elif mode == "subsets":
            code = rng.integers(1, 2 ** len(have))  # a non-empty subset of the available ones
            out[i, have[[bool(code >> b & 1) for b in range(len(have))]]] = True
        else:
            raise ValueError(f"unknown modality sampling mode {mode!r}")
    return out


# ------------------------------------------------------- 2. the pool from stage 1 to stage 2
def stage1_checkpoint(opts: TrainOptions, fold: int | None) -> Path:
    """Where stage 2 takes its prompts from: --init-from, else this run's own stage 1."""
    src = opts.init_from if opts.init_from is not None else opts.split_dir(fold) / "stage1"
    for cand in (src, src / "checkpoints" / "best", src / (f"fold{fold}" if fold else "train-test") / "stage1" / "checkpoints" / "best"):
        if (cand / "COMPLETE").is_file():
            return cand
    raise TrainError(f"stage 2 needs a trained stage 1: none found at {src}. Run --stage 1 first "
                     f"(or --stage both), or pass --init-from RUN_OR_CHECKPOINT")


@torch.no_grad()
def transfer_activated(old: PromptPool, new: PromptPool) -> list[int]:
    """Carry the prompts ``old`` activated into ``new``.

    Prompts with a selection count above zero are copied (keys and values), most used first; if
    more were used than ``new`` holds, the least used are left out. The rest of ``new`` keeps its
    fresh initialisation. ``new``'s counts start at zero. Returns the old indices kept, in order.
    """
    if old.values.shape[1:] != new.values.shape[1:] or old.keys.shape[1] != new.keys.shape[1]:
        raise ValueError(
            f"cannot carry prompts of length {old.values.shape[1]} into a pool of length "
            f"{new.values.shape[1]}: stage 2 must keep pool.length (and the backbone) of stage 1")
    total = old.counts.sum(0)
    order = torch.argsort(total, descending=True, stable=True)
    kept = [int(i) for i in order if total[i] > 0][: new.cfg.size]
    for slot, i in enumerate(kept):
        new.keys[slot] = old.keys[i]
        new.values[slot] = old.values[i]
    new.counts.zero_()
    return kept


def build_stage_model(opts: TrainOptions, stage: str, fold: int | None, backbone) -> tuple[UMBEnet, dict]:
    """The model a stage starts from, and (stage 2) the record of what it took from stage 1."""
    torch.manual_seed(opts.seed)
    model = UMBEnet(opts.model, backbone=backbone)
    info = {}
    if stage == "stage2":
        src = stage1_checkpoint(opts, fold)
        load_weights(model, src)
        if model.pool is not None:
            fresh = PromptPool(backbone.dims.embed_dim, backbone.dims.token_dim, opts.model.pool)
            kept = transfer_activated(model.pool, fresh)
            model.pool = fresh
            info = {"init_from": str(src), "prompts_carried": kept}
    return model, info


# ------------------------------------------------------------ 3. the schedule and its stops
def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig):
    """Cut the lr by ``plateau_factor`` when the validation loss stops decreasing."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)


def stop_reason(lr: float, train_accuracy: float, cfg: OptimConfig) -> str | None:
    """Why training ends after this epoch (the paper's two early stops), or None to go on."""
    if lr < cfg.min_lr:
        return f"learning rate {lr:.2e} fell below min_lr={cfg.min_lr:g}"
    if train_accuracy > cfg.stop_train_accuracy:
        return f"training accuracy {train_accuracy:.3f} passed {cfg.stop_train_accuracy:g}"
    return None
