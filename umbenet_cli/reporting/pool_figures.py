"""Prompt-pool figures: selection counts per prompt and modality subset, and the pool keys in 2-D
(the paper's Fig. 8), for the first fold of an experiment, one panel per stage.

Both figures show the same checkpoint, the one ``umbenet eval`` uses (best, else last), and say
which: its ``pool.counts`` [8, N] (training selections up to that checkpoint; row = bit code of the
modalities presented: video=1, audio=2, text=4) and its ``pool.keys`` [N, E]. (Before, the usage
heat map showed the last epoch's counts while the keys were coloured by the best checkpoint's, so
the two figures could contradict each other.) Without a checkpoint, the usage figure falls back to
the last metrics.jsonl line and says so. A stage-2 pool holds the prompts carried from stage 1
(init.json ``prompts_carried``) in its first slots, in that order.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from umbenet_cli.reporting.collect import PAPER_ORDER, Experiment, FoldEval, read_metrics, subset_of_code
from umbenet_cli.reporting.figures import class_colours, new_figure, pca2, save
from umbenet_cli.reporting.tensors import read_tensor

# Bit codes of the 7 non-empty subsets (code 0, nothing presented, selects nothing), in the paper's order.
CODES = tuple(sorted(range(1, 8), key=lambda c: PAPER_ORDER.index(subset_of_code(c))))
SUBSET_COLOURS = dict(zip((subset_of_code(c) for c in CODES), class_colours(7)))


def _first_fold(exp: Experiment) -> FoldEval:
    return exp.folds[0]


def _fold_label(fe: FoldEval) -> str:
    return "train-test" if fe.fold is None else f"fold {fe.fold}"


def stage_counts(stage_dir: Path) -> np.ndarray | None:
    """[8, N] selection counts at the end of the stage, or None (no pool, no metrics)."""
    lines = [m for m in read_metrics(stage_dir) if m.get("pool_counts") is not None]
    return np.asarray(lines[-1]["pool_counts"], dtype=np.int64) if lines else None


def _usage_counts(stage_dir: Path) -> tuple[str, np.ndarray] | None:
    """(which checkpoint, counts [8, N]): the checkpoint's, else the last metrics line's."""
    pool = _checkpoint_pool(stage_dir)
    if pool is not None:
        return f"{pool[2]} checkpoint", pool[1]
    counts = stage_counts(stage_dir)
    return None if counts is None else ("last epoch, no checkpoint", counts)


def usage_figure(exp: Experiment, path: Path) -> Path | None:
    """Heat map (modality subset x prompt) and total selections per prompt, per stage, at the
    checkpoint the keys figure and the evaluation use."""
    fe = _first_fold(exp)
    panels = [(f"{d.name}, {which}", c) for d in exp.stage_dirs(fe) if (got := _usage_counts(d)) is not None
              for which, c in [got]]
    if not panels:
        return None
    n = max(c.shape[1] for _, c in panels)
    fig = new_figure(max(5.0, 0.22 * n + 2.5) * len(panels), 5.2)
    axes = fig.subplots(2, len(panels), squeeze=False, gridspec_kw={"height_ratios": [3, 1.4]})
    for col, (stage, counts) in enumerate(panels):
        heat = counts[list(CODES)]
        ax = axes[0, col]
        image = ax.imshow(heat, aspect="auto", cmap="viridis")
        ax.set_yticks(range(len(CODES)), [subset_of_code(c) for c in CODES])
        ax.set_title(f"{stage}: selections per subset and prompt")
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        total = counts.sum(0)
        axes[1, col].bar(range(len(total)), total, color=["tab:blue" if t else "lightgrey" for t in total])
        axes[1, col].set_xlabel(f"prompt ({int((total > 0).sum())} of {len(total)} used)")
        axes[1, col].set_ylabel("selections")
        for a in (ax, axes[1, col]):
            a.set_xlim(-0.5, len(total) - 0.5)
    fig.suptitle(f"{exp.name}: prompt-pool usage, {_fold_label(fe)}")
    return save(fig, path)


def _checkpoint_pool(stage_dir: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(keys [N, E], counts [8, N], "best"/"last") of the stage's best checkpoint, else its last."""
    for which in ("best", "last"):
        f = stage_dir / "checkpoints" / which / "model.safetensors"
        if f.is_file():
            keys, counts = read_tensor(f, "pool.keys"), read_tensor(f, "pool.counts")
            if keys is not None:
                counts = counts if counts is not None else np.zeros((8, len(keys)), np.int64)
                return keys.astype(np.float64), counts, which
    return None


def carried_slots(stage_dir: Path) -> list[int]:
    """Stage-2 slots holding prompts carried over from stage 1 (init.json), [] otherwise."""
    f = stage_dir / "init.json"
    if not f.is_file():
        return []
    try:
        return list(range(len(json.loads(f.read_text()).get("prompts_carried") or [])))
    except ValueError:
        return []


def keys_figure(exp: Experiment, path: Path) -> Path | None:
    """PCA of each stage's pool keys (one projection fitted on all stages, so panels compare):
    used prompts coloured by the modality subset that selected them most, unused ones hollow, and
    in stage 2 the prompts carried from stage 1 ringed."""
    fe = _first_fold(exp)
    pools = [(d, p) for d in exp.stage_dirs(fe) if (p := _checkpoint_pool(d)) is not None]
    if not pools:
        return None
    xy_all = pca2(np.concatenate([k for _, (k, _, _) in pools]))
    fig = new_figure(5.2 * len(pools), 4.8)
    axes = fig.subplots(1, len(pools), squeeze=False)[0]
    lo, hi = xy_all.min(0), xy_all.max(0)
    pad = 0.08 * np.maximum(hi - lo, 1e-6)
    start = 0
    for ax, (stage_dir, (keys, counts, which)) in zip(axes, pools):
        xy = xy_all[start:start + len(keys)]
        start += len(keys)
        used = counts.sum(0) > 0
        dominant = counts[list(CODES)].argmax(0)
        for code_i, code in enumerate(CODES):
            sel = used & (dominant == code_i)
            if sel.any():
                name = subset_of_code(code)
                ax.scatter(xy[sel, 0], xy[sel, 1], s=46, color=SUBSET_COLOURS[name], label=f"used, mostly {name}")
        if (~used).any():
            ax.scatter(xy[~used, 0], xy[~used, 1], s=46, facecolors="none", edgecolors="grey", label="unused")
        carried = carried_slots(stage_dir)
        if carried:
            ax.scatter(xy[carried, 0], xy[carried, 1], s=140, facecolors="none", edgecolors="black",
                       linewidths=1.2, label="carried from stage 1")
        for i, (x, y) in enumerate(xy):
            ax.annotate(str(i), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_title(f"{stage_dir.name}, {which} checkpoint: {int(used.sum())} of {len(keys)} prompts used")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{exp.name}: prompt-pool keys (PCA), {_fold_label(fe)}")
    return save(fig, path)
