"""Prompt-pool figures: which prompts each modality selects, and the pool keys in 2-D (the paper's
Fig. 8), for the first fold of an experiment, one panel per stage.

Both figures read the stage's counting pass (``selection.json``, written after the stage by
``training.two_stage.write_selection``): its best checkpoint, in eval mode, run over the training
clips with each modality alone and with each clip's modalities together, the top-k its query
selects counted per prompt. That is the trained model's preference, not the running counts of
training, which also hold the first steps' random keys. A stage without ``selection.json``
(runs trained before the pass existed) falls back to its checkpoint's running ``pool.counts``,
and the panel says so. Prompts stage 2 carried (its ``init.json``) are marked in stage 1's panel,
and stage 2's slots are labelled with the stage-1 prompt they came from ("7<-30": slot 7 holds
stage 1's prompt 30; fresh slots keep their number).
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
_CODE_OF = {subset_of_code(c): c for c in CODES}


def _first_fold(exp: Experiment) -> FoldEval:
    return exp.folds[0]


def _fold_label(fe: FoldEval) -> str:
    return "train-test" if fe.fold is None else f"fold {fe.fold}"


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def stage_counts(stage_dir: Path) -> np.ndarray | None:
    """[8, N] selection counts at the end of the stage, or None (no pool, no metrics)."""
    lines = [m for m in read_metrics(stage_dir) if m.get("pool_counts") is not None]
    return np.asarray(lines[-1]["pool_counts"], dtype=np.int64) if lines else None


def counting_pass(stage_dir: Path) -> np.ndarray | None:
    """[8, N] counts of the stage's counting pass (``selection.json``), row = bit code, or None."""
    sel = _json(stage_dir / "selection.json")
    if not sel or not sel.get("counts"):
        return None
    out = np.zeros((8, int(sel["pool_size"])), dtype=np.int64)
    for name, row in sel["counts"].items():
        out[_CODE_OF[name]] = row
    return out


def _usage_counts(stage_dir: Path) -> tuple[str, np.ndarray] | None:
    """(what was counted, counts [8, N]): the counting pass, else the checkpoint's running counts,
    else the last metrics line's."""
    counts = counting_pass(stage_dir)
    if counts is not None:
        return "best checkpoint, counting pass", counts
    pool = _checkpoint_pool(stage_dir)
    if pool is not None:
        return f"{pool[2]} checkpoint, training counts (no counting pass)", pool[1]
    counts = stage_counts(stage_dir)
    return None if counts is None else ("last epoch's training counts, no checkpoint", counts)


def carried_from(stage_dir: Path) -> list[int]:
    """Stage 2: the stage-1 prompt in each carried slot (init.json ``prompts_carried``), slot order."""
    return list((_json(stage_dir / "init.json") or {}).get("prompts_carried") or [])


def carried_slots(stage_dir: Path) -> list[int]:
    """Stage-2 slots holding prompts carried over from stage 1 (init.json), [] otherwise."""
    return list(range(len(carried_from(stage_dir))))


def slot_labels(stage_dir: Path, n: int) -> list[str]:
    """Labels of a stage's N pool slots: "slot<-prompt" for a slot carried from stage 1."""
    came = carried_from(stage_dir)
    return [f"{i}<-{came[i]}" if i < len(came) else str(i) for i in range(n)]


def _activated_in(stage_dir: Path, stage_dirs: list[Path]) -> list[int]:
    """Stage 1's prompts that the following stage 2 carried (marked in stage 1's panel)."""
    if stage_dir.name != "stage1":
        return []
    return next((carried_from(d) for d in stage_dirs if d.name == "stage2"), [])


def usage_figure(exp: Experiment, path: Path) -> Path | None:
    """Heat map (modality subset x prompt) and total selections per prompt, per stage, from each
    stage's counting pass; in stage 1's panel the prompts stage 2 carried are starred."""
    fe = _first_fold(exp)
    dirs = list(exp.stage_dirs(fe))
    panels = [(d, which, c) for d in dirs if (got := _usage_counts(d)) is not None for which, c in [got]]
    if not panels:
        return None
    n = max(c.shape[1] for _, _, c in panels)
    fig = new_figure(max(5.0, 0.26 * n + 2.5) * len(panels), 5.6)
    axes = fig.subplots(2, len(panels), squeeze=False, gridspec_kw={"height_ratios": [3, 1.6]})
    for col, (stage_dir, which, counts) in enumerate(panels):
        rows = [c for c in CODES if counts[c].any()] or list(CODES)
        heat = counts[rows]
        ax = axes[0, col]
        image = ax.imshow(heat, aspect="auto", cmap="viridis")
        ax.set_yticks(range(len(rows)), [subset_of_code(c) for c in rows])
        ax.set_title(f"{stage_dir.name} ({which}):\nselections per presented subset and prompt", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        total = counts.sum(0)
        carried = set(_activated_in(stage_dir, dirs))
        colours = ["tab:red" if i in carried else ("tab:blue" if t else "lightgrey") for i, t in enumerate(total)]
        axes[1, col].bar(range(len(total)), total, color=colours)
        labels = slot_labels(stage_dir, len(total))
        axes[1, col].set_xticks(range(len(total)), labels, rotation=90, fontsize=6)
        note = f"; red: the {len(carried)} stage 2 carried" if carried else ""
        note += "; 'a<-b': slot a holds stage 1's prompt b" if carried_from(stage_dir) else ""
        axes[1, col].set_xlabel(f"prompt ({int((total > 0).sum())} of {len(total)} selected{note})", fontsize=8)
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


def keys_figure(exp: Experiment, path: Path) -> Path | None:
    """PCA of each stage's pool keys (one projection fitted on all stages, so panels compare):
    used prompts coloured by the modality subset that selected them most in the counting pass,
    unused ones hollow, and in stage 2 the prompts carried from stage 1 ringed and labelled
    "slot<-stage-1 prompt"."""
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
        if which == "best" and (passed := counting_pass(stage_dir)) is not None:
            counts = passed  # what the trained model selects, as in the usage figure
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
        for label, (x, y) in zip(slot_labels(stage_dir, len(keys)), xy):
            ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_title(f"{stage_dir.name}, {which} checkpoint: {int(used.sum())} of {len(keys)} prompts used")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{exp.name}: prompt-pool keys (PCA), {_fold_label(fe)}")
    return save(fig, path)
