"""Two-stage training as the paper states it (section 3.4, with the schedule of section 4.1).

This module is the one home of the training *method*; ``training.loop`` runs the mechanics
(batches, devices, checkpoints, logging) and asks this module what to do.

1. What each stage presents to the model (``STAGE_MODES``, ``sample_presence``)

   stage 1    "the system inputs audio (A), visual (V), and textual (T) modalities separately":
              each clip of a batch presents one modality, drawn uniformly among those it has;
              the other two are masked, so prompts specialise per modality.
   stage 2    "training with randomly missing modal information": each clip presents a uniform
              random non-empty subset of the modalities it has.
   onestage   the ablation of Table 4 (bottom): stage 2's presentation from a fresh model;
              with ``--all-modalities`` every clip presents all it has ("all": no missing).

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

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.devices import inference_precision
from umbenet_cli.model.checkpoint import load_weights
from umbenet_cli.model.config import OptimConfig
from umbenet_cli.model.prompt_pool import PromptPool
from umbenet_cli.model.umbenet import UMBEnet
from umbenet_cli.training.data import make_batch
from umbenet_cli.training.distributed import DistInfo, all_reduce_sum_, barrier, broadcast_object
from umbenet_cli.training.options import TrainError, TrainOptions

# ----------------------------------------------------------------- 1. what each stage presents
STAGE_MODES = {"stage1": "unimodal", "stage2": "subsets", "onestage": "subsets"}
STAGE_IDS = {"stage1": 1, "stage2": 2, "onestage": 3}  # keys of the per-stage random streams


def stage_mode(stage: str, opts: TrainOptions) -> str:
    """What ``stage`` presents in this run (``sample_presence``'s mode)."""
    return "all" if stage == "onestage" and opts.all_modalities else STAGE_MODES[stage]


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


MODALITY_CODES = {"V": 1, "A": 2, "T": 4}  # rows of a counts [8, N] tensor (bit codes)
TRANSFER_RULES = ("significant", "above_uniform", "any", "top", "all", "none")


def binomial_tail(count: torch.Tensor, n: torch.Tensor, p: float) -> torch.Tensor:
    """P(X >= count) for X ~ Binomial(n, p), exactly (a sum in log space), elementwise;
    count and n integer tensors of one shape -> float64 tensor of that shape."""
    count, n = count.double(), n.double().expand_as(count)
    if p >= 1.0:  # every query selects every prompt (k = N)
        return (count <= n).double()
    out = torch.ones_like(count)
    for i in range(count.numel()):
        c, m = count.view(-1)[i], n.reshape(-1)[i]
        if c <= 0:
            continue
        x = torch.arange(int(c), int(m) + 1, dtype=torch.float64)
        if x.numel() == 0:
            out.view(-1)[i] = 0.0
            continue
        logp = (torch.lgamma(m + 1) - torch.lgamma(x + 1) - torch.lgamma(m - x + 1)
                + x * np.log(p) + (m - x) * np.log1p(-p))
        out.view(-1)[i] = torch.logsumexp(logp, 0).exp().clamp(max=1.0)
    return out


def selection_pvalues(counts: torch.Tensor, top_k: int) -> torch.Tensor:
    """counts [8, N] -> one-sided p-values [8, N] of "selected more often than a query without
    preference would select it": each of a row's n = S / k queries (S its selections) picks a
    given prompt with probability k / N, so its count is Binomial(n, k / N). Rows without
    selections get p = 1."""
    N = counts.shape[1]
    n = (counts.sum(1, keepdim=True) // top_k).expand_as(counts)
    return binomial_tail(counts, n, min(top_k / N, 1.0))


def activated(counts: torch.Tensor, top_k: int, rule: str = "significant", alpha: float = 0.01) -> torch.Tensor:
    """Which prompts stage 1 activated: counts [8, N] -> bool [N].

    ``counts[code, j]``: how many of the queries presenting the modality subset ``code`` (bit
    code: V 1, A 2, T 4) selected prompt j, each query selecting ``top_k`` prompts. Stage 2's
    counts come from the counting pass (``count_selections``): the trained stage-1 model, each
    training clip presenting each of its modalities alone. Rules (``pool.transfer``):

    significant    for some modality, more selections than uniform selection explains: a
                   one-sided exact binomial test (``selection_pvalues``) at ``alpha``,
                   Bonferroni-corrected over N x the modalities counted. On counts from a
                   uniform random selector (N 32, k 5, 150 clips a modality) it carries 0.01
                   prompts on average; a modality that prefers five prompts gets those five.
    above_uniform  the rule of runs saved before the test: a share of some modality's selections
                   above uniform (count > S / N). Chance alone passes it for about half of the
                   prompts of each modality: 27.6 of 32 on the uniform selector above.
    any            selected at least once (the paper's words read literally).
    top            the union over modalities of each modality's ``top_k`` most selected prompts.
    all / none     the ablation arms: carry the whole pool / start stage 2 from a fresh one.
    """
    if rule not in TRANSFER_RULES:
        raise ValueError(f"transfer rule {rule!r} not found; available = {list(TRANSFER_RULES)}")
    N = counts.shape[1]
    total = counts.sum(1, keepdim=True)
    counted = (total > 0).squeeze(1)
    if rule == "all":
        return torch.ones(N, dtype=torch.bool)
    if rule == "none" or not counted.any():
        return torch.zeros(N, dtype=torch.bool)
    if rule == "any":
        return (counts > 0).any(0)
    if rule == "above_uniform":
        return ((counts * N > total) & (total > 0)).any(0)
    if rule == "top":
        keep = torch.zeros(N, dtype=torch.bool)
        for row in counts[counted]:
            order = torch.argsort(row, descending=True, stable=True)[:top_k]
            keep[order[row[order] > 0]] = True
        return keep
    tests = int(counted.sum()) * N  # Bonferroni over the prompts of every modality counted
    return (selection_pvalues(counts, top_k)[counted] <= alpha / tests).any(0)


@dataclass
class Selections:
    """What a counting pass saw (``count_selections``), all summed over processes.

    counts   [8, N] per clip: row = bit code of the modalities presented, each clip adding the
             k prompts selected for it (under ``pool.query_scope = "batch"``, its batch's k)
    queries  [8, N] per independent query: equal to ``counts`` with per-clip queries; one per
             batch with batch queries (the draws the binomial test counts)
    clips    [8] clips counted per row
    """

    counts: torch.Tensor
    queries: torch.Tensor
    clips: torch.Tensor

    def per_modality(self, t: torch.Tensor) -> dict[str, list[int]]:
        return {m: t[code].tolist() for m, code in PRESENTED.items() if self.clips[code] > 0}

    def to_json(self, top_k: int) -> dict:
        """The pass as ``selection.json`` / ``init.json`` record it (names: V, A, T, V+A+T, ...)."""
        return {"counted_clips": {m: int(self.clips[c]) for m, c in PRESENTED.items() if self.clips[c] > 0},
                "selections": {m: int(self.counts[c].sum()) for m, c in PRESENTED.items() if self.clips[c] > 0},
                "counts": self.per_modality(self.counts),
                "p_values": {m: [float(f"{p:.3g}") for p in row]
                             for m, row in self.per_modality(selection_pvalues(self.queries, top_k)).items()}}


# The presentations a counting pass makes: each modality alone (as stage 1 trains), and each
# clip's modalities together ("all", the subsets stage 2 and evaluation present), by bit code.
PRESENTED = {"V": 1, "A": 2, "T": 4, "V+A": 3, "V+T": 5, "A+T": 6, "V+A+T": 7}


@torch.no_grad()
def count_selections(model: UMBEnet, table: FeatureTable, rows: np.ndarray, available: np.ndarray,
                     info: DistInfo, batch_size: int, together: bool = False) -> Selections:
    """The counting pass: which prompts the trained model's query selects, per modality.

    Every clip of ``rows`` presents each modality it has alone (``together``: also all of them
    at once) to ``model`` in eval mode (no dropout, no balancing factor), and the top-k its query
    selects is counted. Batches of ``batch_size`` hold one presentation each, so under
    ``pool.query_scope = "batch"`` a batch mean is over clips presenting the same modality, as
    in a unimodal stage-1 batch of the authors' code. Under several processes each rank counts
    every world-th batch and the counts are summed: every rank returns the same ``Selections``.
    """
    from umbenet_cli.model.umbenet import subset_code

    pool = model.pool
    N = pool.cfg.size
    batch_scope = getattr(pool.cfg, "query_scope", "clip") == "batch"
    counts, queries = torch.zeros(8, N, dtype=torch.long), torch.zeros(8, N, dtype=torch.long)
    clips = torch.zeros(8, dtype=torch.long)
    was = model.training
    model.eval()
    plans = [np.eye(3, dtype=bool)[j] for j in range(3)] + ([None] if together else [])
    for one in plans:
        sel = rows[available[rows].any(1)] if one is None else rows[available[rows][:, int(one.argmax())]]
        present = available[sel] if one is None else np.repeat(one[None, :], len(sel), axis=0)
        starts = range(0, len(sel), batch_size)
        for s in list(starts)[info.rank::info.world]:
            b = make_batch(table, sel[s:s + batch_size], present[s:s + batch_size], info.device)
            with inference_precision(info.device):
                codes = subset_code(b.present)
                idx = pool(model.fuse(model.encode(b), b.present), codes)["indices"].cpu()
            codes = codes.cpu()
            flat = (codes[:, None].expand_as(idx) * N + idx).reshape(-1)
            counts.view(-1).index_add_(0, flat, torch.ones_like(flat))
            clips.index_add_(0, codes, torch.ones_like(codes))
            if batch_scope:  # one query per batch and presented subset
                for c in codes.unique():
                    queries[c, idx[codes == c][0]] += 1
            else:
                queries.view(-1).index_add_(0, flat, torch.ones_like(flat))
    model.train(was)
    packed = all_reduce_sum_(torch.cat([counts.view(-1), queries.view(-1), clips]).to(info.device), info).cpu()
    return Selections(packed[:8 * N].view(8, N), packed[8 * N:16 * N].view(8, N), packed[16 * N:])


@torch.no_grad()
def transfer_activated(old: PromptPool, new: PromptPool, seen: Selections, rule: str, alpha: float) -> list[int]:
    """Carry the prompts ``old`` activated (``activated`` on the counting pass ``seen``, each
    modality alone) into ``new``.

    Activated prompts are copied (keys and values), most selected first; if more were activated
    than ``new`` holds, the least selected are left out. The rest of ``new`` keeps its fresh
    initialisation. ``new``'s counts start at zero. Returns the old indices kept, in order.
    """
    if old.values.shape[1:] != new.values.shape[1:] or old.keys.shape[1] != new.keys.shape[1]:
        raise ValueError(
            f"cannot carry prompts of length {old.values.shape[1]} into a pool of length "
            f"{new.values.shape[1]}: stage 2 must keep pool.length (and the backbone) of stage 1")
    keep = activated(_unimodal(seen.queries), old.cfg.top_k, rule, alpha)
    total = _unimodal(seen.counts).sum(0)
    order = torch.argsort(total, descending=True, stable=True)
    kept = [int(i) for i in order if keep[i]][: new.cfg.size]
    for slot, i in enumerate(kept):
        new.keys[slot] = old.keys[i]
        new.values[slot] = old.values[i]
    for buf in new.counters():
        buf.zero_()
    return kept


def _unimodal(t: torch.Tensor) -> torch.Tensor:
    """The rows of [8, ...] counts that present one modality alone (V, A, T); the rest zeroed."""
    out = torch.zeros_like(t)
    for code in MODALITY_CODES.values():
        out[code] = t[code]
    return out


SUBSET_NAMES = {code: name for name, code in PRESENTED.items()}


def transfer_record(old: PromptPool, new: PromptPool, kept: list[int], src: Path, seen: Selections,
                    rule: str, alpha: float) -> dict:
    """What stage 2's ``init.json`` records about the transfer, per fold."""
    uni = Selections(_unimodal(seen.counts), _unimodal(seen.queries), _unimodal(seen.clips[:, None])[:, 0])
    counted = int((uni.clips > 0).sum())
    pvals = selection_pvalues(uni.queries, old.cfg.top_k)
    return {
        "init_from": str(src),
        "rule": rule, "alpha": alpha,
        "threshold": alpha / max(counted * old.cfg.size, 1) if rule == "significant" else None,
        "rule_text": RULE_TEXT[rule],
        "counting": "the stage-1 model's best checkpoint, in eval mode, on this run's training clips, "
                    "each modality alone (no balancing factor, no dropout)",
        "query_scope": getattr(old.cfg, "query_scope", "clip"),
        "stage1_pool_size": old.cfg.size, "stage2_pool_size": new.cfg.size,
        "carried": len(kept), "fresh": new.cfg.size - len(kept),
        "prompts_carried": kept,
        "carried_detail": [
            {"slot": slot, "stage1_prompt": i,
             "stage1_counts": {m: int(uni.counts[c, i]) for m, c in MODALITY_CODES.items() if uni.counts[c, i]},
             "p_values": {m: float(f"{pvals[c, i]:.3g}") for m, c in MODALITY_CODES.items() if uni.clips[c]}}
            for slot, i in enumerate(kept)],
        "counted_clips": {m: int(uni.clips[c]) for m, c in MODALITY_CODES.items()},
        "stage1_selections": {m: int(uni.counts[c].sum()) for m, c in MODALITY_CODES.items()},
        "stage1_counts": uni.per_modality(uni.counts),
        "stage1_p_values": {m: [float(f"{p:.3g}") for p in row] for m, row in uni.per_modality(pvals).items()},
    }


RULE_TEXT = {
    "significant": "activated = for some modality, selected more often than a query without preference would "
                   "select it (one-sided exact binomial test, Bonferroni over prompts x modalities)",
    "above_uniform": "activated = a share of some modality's selections above uniform (count > total / N)",
    "any": "activated = selected at least once",
    "top": "activated = among some modality's top-k most selected prompts",
    "all": "every prompt carried (ablation: carry all)",
    "none": "no prompt carried (ablation: stage 2 from a fresh pool)",
}


def transfer_warning(record: dict) -> str | None:
    """A transfer that carries none or all of stage 1's prompts is not the paper's transfer
    (unless the run asked for exactly that: the carry-all / carry-none ablations)."""
    n, size = record["carried"], record["stage1_pool_size"]
    if record.get("rule") in ("all", "none"):
        return None
    if n == 0:
        return (f"stage 2 carried none of stage 1's {size} prompts (no prompt passed the rule "
                f"{record.get('rule', 'above_uniform')!r} for any modality): stage 2 starts from a fresh pool")
    if n >= size:
        return f"stage 2 carried all {size} of stage 1's prompts: nothing is fresh, stage 2 continues stage 1's pool"
    return None


def build_stage_model(opts: TrainOptions, stage: str, fold: int | None, backbone, table: FeatureTable,
                      train_rows: np.ndarray, available: np.ndarray, info: DistInfo) -> tuple[UMBEnet, dict]:
    """The model a stage starts from, and (stage 2) the record of what it took from stage 1:
    stage 1's best weights, then a counting pass of that model over this run's training clips
    decides which prompts the new pool carries (``pool.transfer``)."""
    torch.manual_seed(opts.seed)
    model = UMBEnet(opts.model, backbone=backbone)
    record = {}
    if stage == "stage2":
        src = stage1_checkpoint(opts, fold)
        load_weights(model, src)
        if model.pool is not None:
            pool_cfg = opts.model.pool
            fresh = PromptPool(backbone.dims.embed_dim, backbone.dims.token_dim, pool_cfg)
            model.to(info.device)
            seen = count_selections(model, table, train_rows, available, info, opts.model.optim.batch_size)
            model.cpu()
            kept = transfer_activated(model.pool.cpu(), fresh, seen, pool_cfg.transfer, pool_cfg.transfer_alpha)
            kept = broadcast_object(kept, info)  # rank 0's decision (the counts agree; the rule is exact)
            record = transfer_record(model.pool, fresh, kept, src, seen, pool_cfg.transfer, pool_cfg.transfer_alpha)
            model.pool = fresh
    return model, record


def write_selection(model: UMBEnet, folder: Path, table: FeatureTable, train_rows: np.ndarray,
                    available: np.ndarray, info: DistInfo) -> dict | None:
    """After a stage: the counting pass of its best checkpoint (each modality alone, and each
    clip's modalities together) into ``selection.json``, the report's picture of which prompts
    each modality prefers once trained."""
    best = folder / "checkpoints" / "best"
    if model.pool is None or not broadcast_object((best / "COMPLETE").is_file(), info):
        return None
    load_weights(model, best, map_location=info.device)
    seen = count_selections(model, table, train_rows, available, info, model.config.optim.batch_size, together=True)
    record = {"checkpoint": "best", "clips": "training", "query_scope": getattr(model.config.pool, "query_scope", "clip"),
              "pool_size": model.config.pool.size, "top_k": model.config.pool.top_k,
              **seen.to_json(model.config.pool.top_k)}
    if info.main:
        (folder / "selection.json").write_text(json.dumps(record, indent=1))
    barrier(info)
    return record


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
