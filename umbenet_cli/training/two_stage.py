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
   (key and value) into it, most used first, and leaves the rest freshly initialised. "Activated"
   is decided in ``activated`` (a share of some modality's selections above uniform use, counted
   without any balancing factor). Stage 2's ``init.json`` records what was carried, and the train
   summary prints it; a transfer of none or all of the prompts is a warning.

3. The schedule and the stopping rules (``make_optimizer``, ``make_scheduler``, ``stop_reason``)

   "Adam ... initial learning rate 0.002 ... batch size 16"; "if there is no significant decrease
   in loss on the validation set for three consecutive training epochs, the learning rate will be
   reduced to 0.6 times": the cut comes at the end of the ``plateau_epochs``-th (3rd) bad epoch;
   "when the learning rate drops below 1e-7 ... terminated" (``min_lr``); "when the accuracy of
   the model on the training set is more than 80%, we will terminate" (``stop_train_accuracy``,
   checked on the epoch's running training accuracy). Both stops are checked at each epoch's end,
   after the scheduler's step. ``max_epochs`` bounds a run the paper leaves unbounded. No
   gradient clipping: the paper names none (``optim.grad_clip`` can switch it on).
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


def activated(counts: torch.Tensor) -> torch.Tensor:
    """Which prompts stage 1 activated: counts [8, N] (selections per modality subset, made by the
    query alone, ``PromptPool.activation_counts``) -> bool [N].

    A prompt is activated when, for some modality subset, it took a larger share of that subset's
    selections than uniform use would give it (count > total / N). Why not "selected at least
    once" (the literal reading): at the start of stage 1 keys are random and queries spread, so
    within the first epoch every prompt is selected by some clip (measured: N 32, k 5, batch 16,
    42 steps on the synthetic cache, unbalanced: 32 of 32 used), and the transfer would carry the
    whole pool. Above-uniform share separates the prompts the queries came back to from those
    touched by chance, under every setting: with ``pool.balance`` on, the counts read are those
    gathered without the balancing factor, since the balanced counts are near uniform by design.
    Per subset, so a prompt that only audio relies on counts even when audio clips are few.
    """
    total = counts.sum(1, keepdim=True)
    return ((counts * counts.shape[1] > total) & (total > 0)).any(0)


@torch.no_grad()
def transfer_activated(old: PromptPool, new: PromptPool) -> list[int]:
    """Carry the prompts ``old`` activated (``activated``) into ``new``.

    Activated prompts are copied (keys and values), most selected first; if more were activated
    than ``new`` holds, the least selected are left out. The rest of ``new`` keeps its fresh
    initialisation. ``new``'s counts start at zero. Returns the old indices kept, in order.
    """
    if old.values.shape[1:] != new.values.shape[1:] or old.keys.shape[1] != new.keys.shape[1]:
        raise ValueError(
            f"cannot carry prompts of length {old.values.shape[1]} into a pool of length "
            f"{new.values.shape[1]}: stage 2 must keep pool.length (and the backbone) of stage 1")
    counts = old.activation_counts()
    total = counts.sum(0)
    keep = activated(counts)
    order = torch.argsort(total, descending=True, stable=True)
    kept = [int(i) for i in order if keep[i]][: new.cfg.size]
    for slot, i in enumerate(kept):
        new.keys[slot] = old.keys[i]
        new.values[slot] = old.values[i]
    for buf in new.counters():
        buf.zero_()
    return kept


SUBSET_NAMES = {1: "V", 2: "A", 3: "V+A", 4: "T", 5: "V+T", 6: "A+T", 7: "V+A+T"}


def transfer_record(old: PromptPool, new: PromptPool, kept: list[int], src: Path) -> dict:
    """What stage 2's ``init.json`` records about the transfer, per fold."""
    counts = old.activation_counts()
    return {
        "init_from": str(src),
        "rule": "activated = a share of some modality subset's stage-1 selections above uniform "
                "(count > total / N), counted without the balancing factor",
        "stage1_pool_size": old.cfg.size, "stage2_pool_size": new.cfg.size,
        "carried": len(kept), "fresh": new.cfg.size - len(kept),
        "prompts_carried": kept,
        "carried_detail": [
            {"slot": slot, "stage1_prompt": i,
             "stage1_counts": {name: int(counts[code, i]) for code, name in SUBSET_NAMES.items() if counts[code, i]}}
            for slot, i in enumerate(kept)],
        "stage1_selections": {name: int(counts[code].sum()) for code, name in SUBSET_NAMES.items() if counts[code].sum()},
    }


def transfer_warning(record: dict) -> str | None:
    """A transfer that carries none or all of stage 1's prompts is not the paper's transfer."""
    n, size = record["carried"], record["stage1_pool_size"]
    if n == 0:
        return (f"stage 2 carried none of stage 1's {size} prompts (no prompt took more than a uniform "
                f"share of any modality's selections): stage 2 starts from a fresh pool")
    if n >= size:
        return f"stage 2 carried all {size} of stage 1's prompts: nothing is fresh, stage 2 continues stage 1's pool"
    return None


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
            info = transfer_record(model.pool, fresh, kept, src)
            model.pool = fresh
    return model, info


# ------------------------------------------------------------ 3. the schedule and its stops
def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig):
    """Cut the lr by ``plateau_factor`` at the end of the ``plateau_epochs``-th consecutive epoch
    whose validation loss is not below the best so far (the paper: "no decrease ... for three
    consecutive training epochs"). torch's ReduceLROnPlateau cuts once its count of bad epochs
    exceeds ``patience``, i.e. after patience + 1 of them: hence patience = plateau_epochs - 1.
    "Decrease" is lower than best * (1 - ``plateau_threshold``) (the paper's "significant": torch's
    default 1e-4 in the paper preset, 1e-3 in the authors' code); after a cut the count starts
    again (no cooldown)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_epochs - 1,
        threshold=cfg.plateau_threshold)


def stop_reason(lr: float, train_accuracy: float, cfg: OptimConfig) -> str | None:
    """Why training ends after this epoch (the paper's two early stops), or None to go on."""
    if lr < cfg.min_lr:
        return f"learning rate {lr:.2e} fell below min_lr={cfg.min_lr:g}"
    if train_accuracy > cfg.stop_train_accuracy:
        return f"training accuracy {train_accuracy:.3f} passed {cfg.stop_train_accuracy:g}"
    return None
