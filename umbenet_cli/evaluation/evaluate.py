"""``umbenet eval``: a trained run on its held-out split, once per modality subset.

For each fold of a run, the final stage's checkpoint (stage 2, else the one-stage ablation, else
stage 1) is evaluated on the fold's test clips (or its validation clips) with every non-empty
subset of the modalities it was trained on (the rows of the paper's Table 3), or with the named
modalities dropped. The encoders run once per batch; only fusion onward runs per subset.

Scores are computed over the whole split from confusion matrices (``metrics.UAR_RULE``); where
the classes include neutral, also without it under both rules of ``metrics.WITHOUT_NEUTRAL_RULES``
(MAFW's 10-class score, Table 3): the authors' (neutral row and column deleted) and the strict one
(neutral column kept), each under its own key and name. A run trained with ``--exclude-classes``
is evaluated on its own class list (the cache read without those classes). A clip that has none
of a subset's modalities (e.g. a clip without audio under "A") cannot be predicted under it: it is
left out of that subset and counted in ``n_without_input``. Failed clips (prep status ``failed``)
are in no split and are counted in ``n_failed_left_out``.

Written to ``<stage>/eval/<split>[-drop-...]/``: results.json, results.csv, predictions.csv,
confusion_<subset>.csv/.png (counts and row-normalised; with neutral, also
confusion_<subset>_without_neutral.csv: the authors' matrix), features.npz (inputs and fused
features of the full subset, for the report's projections), head.json (the class embeddings'
pairwise cosines and the logits' range, trained and at the start: ``head_diagnostics``).
"""
from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from umbenet_cli.data.cache_fit import check_backbone, check_fits
from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.data.class_subset import ClassSelectionError, read_without_classes
from umbenet_cli.devices import inference_precision
from umbenet_cli.errors import UserError
from umbenet_cli.evaluation.head_diagnostics import HeadStats
from umbenet_cli.evaluation.metrics import (
    RULES, UAR_RULE, WITHOUT_NEUTRAL_RULES, confusion_matrix, delete_class, mean_std, scores_from_confusion,
)
from umbenet_cli.model.checkpoint import CheckpointError
from umbenet_cli.model.config import MODALITIES
from umbenet_cli.model.prompt_pool import batch_query_note
from umbenet_cli.model.umbenet import UMBEnet
from umbenet_cli.training.data import failed_clips, make_batch, make_splits
from umbenet_cli.training.options import TrainOptions, stage_names

ABBREV = {"video": "V", "audio": "A", "text": "T"}
# The paper's row order (Table 3), then the subset it does not list.
PAPER_ORDER = ("V", "A", "T", "V+T", "V+A", "V+A+T", "A+T")
FINAL_STAGES = ("stage2", "onestage", "stage1")


class EvalError(UserError, ValueError):
    """An evaluation request that cannot be carried out."""


@dataclass(frozen=True)
class StageRef:
    run_dir: Path
    fold: int | None
    stage_dir: Path
    note: str | None = None  # why this is not the run's final stage (e.g. stage 2 never saved)


def subset_name(mods: tuple[str, ...]) -> str:
    return "+".join(ABBREV[m] for m in MODALITIES if m in mods)


def _complete(stage_dir: Path, checkpoint: str) -> bool:
    return (stage_dir / "checkpoints" / checkpoint / "COMPLETE").is_file()


def _planned_stages(run_dir: Path) -> tuple[str, ...]:
    """The stages run.json asks for, final one last (all of FINAL_STAGES when unreadable)."""
    try:
        return stage_names(json.loads((run_dir / "run.json").read_text()).get("stage", "both"))
    except (OSError, ValueError, KeyError):
        return tuple(reversed(FINAL_STAGES))


def find_stages(path: str | Path, checkpoint: str = "best") -> list[StageRef]:
    """The stage to evaluate in each fold of a run (or the one stage folder given): the run's final
    stage, else the latest stage with a complete ``checkpoint``, with a note saying so."""
    path = Path(path)
    if (path / "checkpoints").is_dir():  # a stage folder
        run_dir = path.parent.parent
        fold = path.parent.name
        return [StageRef(run_dir, int(fold[4:]) if fold.startswith("fold") else None, path)]
    if not (path / "run.json").is_file():
        raise EvalError(f"{path} is not a run folder (no run.json): pass runs/<name> as written by `umbenet train`")
    final = _planned_stages(path)[-1]
    refs = []
    for split_dir in sorted(p for p in path.iterdir() if p.is_dir() and (p.name.startswith("fold") or p.name == "train-test")):
        fold = int(split_dir.name[4:]) if split_dir.name.startswith("fold") else None
        stage = next((split_dir / s for s in FINAL_STAGES if _complete(split_dir / s, checkpoint)), None)
        if stage is None:
            started = next((split_dir / s for s in FINAL_STAGES if (split_dir / s / "checkpoints").is_dir()), None)
            if started is not None:  # let load_for_eval say what is missing
                refs.append(StageRef(path, fold, started))
            continue
        note = None
        if stage.name != final:
            note = (f"{split_dir.name}: {final} has no complete '{checkpoint}' checkpoint (interrupted before its "
                    f"first save, or not trained yet): evaluating {stage.name} instead. Finish the run with "
                    f"`umbenet train --runs-dir {path.parent} --name {path.name} --resume`")
        refs.append(StageRef(path, fold, stage, note))
    if not refs:
        raise EvalError(f"{path} holds no trained stage (no */stage*/checkpoints): has training run yet?")
    return refs


def parse_drop(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in MODALITIES]
    if bad:
        raise EvalError(f"--drop {text!r}: unknown modality {bad}; choose among {list(MODALITIES)}")
    return names


def plan_subsets(trained: tuple[str, ...], cache_has: np.ndarray, drop: tuple[str, ...]) -> list[tuple[str, ...]]:
    usable = tuple(m for m, has in zip(MODALITIES, cache_has) if has and m in trained)
    if drop:
        kept = tuple(m for m in usable if m not in drop)
        if not kept:
            raise EvalError(f"--drop {','.join(drop)} leaves no modality (the run uses {list(usable)}); drop fewer")
        return [kept]
    subsets = [c for r in range(1, len(usable) + 1) for c in itertools.combinations(usable, r)]
    return sorted(subsets, key=lambda s: PAPER_ORDER.index(subset_name(s)))


def load_for_eval(ref: StageRef, checkpoint: str, cache: Path | None, device: str):
    folder = ref.stage_dir / "checkpoints" / checkpoint
    if not (folder / "COMPLETE").is_file():
        raise EvalError(f"{ref.stage_dir} has no complete '{checkpoint}' checkpoint ({folder}); "
                        f"training may not have finished an epoch yet")
    try:
        opts = TrainOptions.from_json((ref.run_dir / "run.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvalError(f"cannot read {ref.run_dir / 'run.json'} ({type(exc).__name__}: {exc}); "
                        f"it is written by `umbenet train` and needed to find the run's cache and split") from None
    try:
        model = UMBEnet.load(folder).to(device).eval()
    except CheckpointError as exc:
        raise EvalError(str(exc)) from None
    source = Path(cache or opts.cache)
    if not (source / "features").is_dir():
        raise EvalError(f"no feature cache at {source}" + ("" if cache else " (the run's cache, from run.json: moved "
                        "or deleted?)") + ": pass the cache with --cache DIR")
    try:
        table = read_without_classes(source, opts.exclude_classes)
    except ClassSelectionError as exc:
        raise EvalError(f"the run was trained without {list(opts.exclude_classes)} (run.json exclude_classes), "
                        f"which the cache at {source} cannot give: {exc}") from None
    check_fits(table.spec, model.config, str(source), EvalError, n_clips=len(table))
    check_backbone(table.spec, model.config.backbone, model.backbone.fingerprint(), EvalError)
    return opts, model, table


@torch.no_grad()
def run_subsets(model: UMBEnet, table: FeatureTable, rows: np.ndarray, subsets, batch_size: int,
                device: str) -> dict:
    """Predictions per subset (-1 where a clip has none of the subset's modalities), in float32
    (``inference_precision``: the precision of validation during training and of predict)."""
    with inference_precision(torch.device(device)):
        return _run_subsets(model, table, rows, subsets, batch_size, device)


def _run_subsets(model: UMBEnet, table: FeatureTable, rows: np.ndarray, subsets, batch_size: int,
                 device: str) -> dict:
    n = len(rows)
    preds = {s: np.full(n, -1, dtype=np.int64) for s in subsets}
    probs = {s: np.zeros((n, len(model.config.classes)), dtype=np.float32) for s in subsets}
    selected: dict = {s: [] for s in subsets}
    full = max(subsets, key=len)
    head = HeadStats()
    fused, inputs = np.zeros((n, model.backbone.dims.embed_dim), np.float32), np.zeros((n, table.frame_emb.shape[2]), np.float32)
    presence = table.presence[rows]
    for s0 in range(0, n, batch_size):
        sl = slice(s0, s0 + batch_size)
        batch = make_batch(table, rows[sl], presence[sl], torch.device(device))
        streams = model.encode(batch)
        T = batch.frame_mask.float()
        inputs[sl] = ((batch.frame_emb * T[..., None]).sum(1) / T.sum(1, keepdim=True).clamp(min=1)).cpu().numpy()
        for s in subsets:
            present = torch.from_numpy(presence[sl] & np.array([m in s for m in MODALITIES])).to(device)
            ok = present.any(1)
            if not ok.any():
                continue
            out = model.head({k: v[ok] for k, v in streams.items()}, present[ok])
            idx = np.arange(sl.start, min(sl.stop, n))[ok.cpu().numpy()]
            preds[s][idx] = out.logits.argmax(1).cpu().numpy()
            probs[s][idx] = out.logits.softmax(1).float().cpu().numpy()
            if out.selected is not None:
                selected[s].append(out.selected.cpu().numpy().ravel())
            if s == full:
                fused[idx] = out.fused.float().cpu().numpy()
                head.add(out.class_emb, out.logits)
    return {"preds": preds, "probs": probs, "selected": selected, "fused": fused, "inputs": inputs,
            "head": head.result(float(model.backbone.logit_scale()))}


def evaluate_stage(ref: StageRef, split: str = "test", drop: tuple[str, ...] = (), checkpoint: str = "best",
                   cache: Path | None = None, device: str = "cpu", out_dir: Path | None = None) -> dict:
    """Evaluate one stage folder; writes its result files and returns results.json's content."""
    from umbenet_cli.evaluation.confusion import plot_confusion, write_confusion_csv

    opts, model, table = load_for_eval(ref, checkpoint, cache, device)
    splits = make_splits(table, ref.fold, opts.val_fraction, opts.seed)
    rows = {"test": splits.test, "val": splits.val}[split]
    subsets = plan_subsets(opts.modalities, table.presence.any(0), drop)
    got = run_subsets(model, table, rows, subsets, model.config.optim.batch_size * 4, device)
    classes = list(model.config.classes)
    labels = table.labels[rows].astype(np.int64)
    neutral = classes.index("neutral") if "neutral" in classes else None
    out_dir = out_dir or ref.stage_dir / "eval" / (split + ("-drop-" + "-".join(drop) if drop else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    rules = {"uar": UAR_RULE, "without_input": "clips with none of a subset's modalities are left out of that subset",
             "failed": "clips whose prep status is failed take part in nothing (no split, no subset)"}
    if neutral is not None:
        rules |= {f"without_neutral_{r}": WITHOUT_NEUTRAL_RULES[r] for r in RULES}
    batched = batch_query_note(model.config.pool, f"here batches of up to {model.config.optim.batch_size * 4} clips "
                               f"of the {split} split in cache order, per subset those that have its modalities")
    if batched:
        rules["batch_query"] = batched
    results = {"units": SUMMARY_UNITS, "run": str(ref.run_dir), "fold": ref.fold, "stage": ref.stage_dir.name, "stage_note": ref.note,
               "split": split,
               "checkpoint": str(ref.stage_dir / "checkpoints" / checkpoint), "dataset": table.spec.dataset,
               "classes": classes, "excluded_classes": list(opts.exclude_classes),
               "n_clips": int(len(rows)), "n_failed_left_out": _failed_in_split(table, ref.fold, split),
               "dropped": list(drop), "trained_modalities": list(opts.modalities), "pool": model.config.pool.__dict__,
               "rules": rules, "rule_without_input": rules["without_input"],
               "rule_without_neutral": rules["without_neutral_authors"] if neutral is not None else None,
               "subsets": []}
    for s in subsets:
        name = subset_name(s)
        keep = got["preds"][s] >= 0
        cm = confusion_matrix(labels[keep], got["preds"][s][keep], len(classes))
        entry = {"name": name, "modalities": list(s), "n": int(keep.sum()), "n_without_input": int((~keep).sum()),
                 **_scores(cm, None), "confusion": cm.tolist()}
        if neutral is not None:
            for rule in RULES:
                entry[f"without_neutral_{rule}"] = _scores(cm, neutral, rule)
        usage = np.concatenate(got["selected"][s]) if got["selected"][s] else np.zeros(0, np.int64)
        entry["prompt_usage"] = np.bincount(usage, minlength=model.config.pool.size).tolist() if model.pool is not None else None
        results["subsets"].append(entry)
        write_confusion_csv(cm, classes, out_dir / f"confusion_{name}.csv")
        if neutral is not None:
            write_confusion_csv(delete_class(cm, neutral), [c for c in classes if c != "neutral"],
                                out_dir / f"confusion_{name}_without_neutral.csv")
        left_out = np.bincount(labels[~keep], minlength=len(classes))  # per class: clips without the input
        entry["n_without_input_per_class"] = left_out.tolist()
        fig_title = f"{_title(ref)} {checkpoint} checkpoint, {name}"
        plot_confusion(cm, classes, out_dir / f"confusion_{name}.png", title=fig_title, normalise=False, left_out=left_out)
        plot_confusion(cm, classes, out_dir / f"confusion_{name}_norm.png", title=fig_title, normalise=True, left_out=left_out)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "head.json").write_text(json.dumps(head_report(model, opts, table, rows, subsets, got, device), indent=2))
    _write_tables(out_dir, results, table, rows, got, subsets)
    results["out_dir"] = str(out_dir)
    return results


def head_report(model: UMBEnet, opts: TrainOptions, table: FeatureTable, rows: np.ndarray, subsets,
                got: dict, device: str) -> dict:
    """head.json: ``head_diagnostics`` for the trained model and for the model the run started
    from (its config and seed, the same frozen backbone), on the same clips, all trained modalities."""
    full = max(subsets, key=len)
    torch.manual_seed(opts.seed)  # as training builds it (training.two_stage)
    start = UMBEnet(model.config, backbone=model.backbone).to(device).eval()
    initial = run_subsets(start, table, rows, [full], model.config.optim.batch_size * 4, device)["head"]
    return {"subset": subset_name(full), "about": "umbenet_cli.evaluation.head_diagnostics",
            "classifier": model.config.classifier, "trained": got["head"], "initial": initial}


def _scores(cm: np.ndarray, drop: int | None, rule: str | None = None) -> dict:
    """uar, war, per_class_recall and uar_classes of ``cm`` (None each when nothing is scored)."""
    kept = cm.sum() - (cm[drop].sum() if drop is not None else 0)
    if not kept:
        return {"uar": None, "war": None, "per_class_recall": None, "uar_classes": 0}
    d = scores_from_confusion(cm, drop=drop, rule=rule).to_dict()
    return {k: d[k] for k in ("uar", "war", "per_class_recall", "uar_classes")}


def _failed_in_split(table: FeatureTable, fold: int | None, split: str) -> int:
    """Failed clips that the split would otherwise hold (test: the fold's or the test split's;
    val: those of the training folds or splits)."""
    failed = failed_clips(table)
    splits = np.asarray([s or "" for s in table.splits])
    if fold is not None:
        where = table.folds == fold if split == "test" else (table.folds >= 0) & (table.folds != fold)
    else:
        where = splits == "test" if split == "test" else np.isin(splits, ["train", "val"])
    return int((failed & where).sum())


def _title(ref: StageRef) -> str:
    return f"{ref.run_dir.name} {'fold ' + str(ref.fold) if ref.fold else ''} {ref.stage_dir.name}".strip()


CSV_COLUMNS = ("subset", "n", "n_without_input", "uar", "war", "uar_classes",
               *(f"{k}_without_neutral_{r}" for r in RULES for k in ("uar", "war", "uar_classes")), "units")
# A CSV has no metadata: each row says what its scores are (n and uar_classes are counts).
CSV_UNITS = "uar/war: fractions of 1 (0.4567 = 45.67%)"


def _write_tables(out_dir: Path, results: dict, table: FeatureTable, rows: np.ndarray, got: dict, subsets) -> None:
    with open(out_dir / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for e in results["subsets"]:
            cells = [e["name"], e["n"], e["n_without_input"], e["uar"], e["war"], e["uar_classes"]]
            for r in RULES:
                wn = e.get(f"without_neutral_{r}") or {}
                cells += [wn.get("uar"), wn.get("war"), wn.get("uar_classes")]
            w.writerow(cells + [CSV_UNITS])
    with open(out_dir / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        names = [subset_name(s) for s in subsets]
        classes = results["classes"]
        w.writerow(["clip_id", "label", "label_name", *(c for n in names for c in (f"pred_{n}", f"pred_{n}_name"))])
        for i, r in enumerate(rows):  # a clip with none of a subset's modalities: -1 and no name
            preds = [int(got["preds"][s][i]) for s in subsets]
            w.writerow([table.clip_ids[r], int(table.labels[r]), classes[int(table.labels[r])],
                        *(c for p in preds for c in (p, classes[p] if p >= 0 else ""))])
    np.savez_compressed(out_dir / "features.npz", labels=table.labels[rows].astype(np.int64),
                        inputs=got["inputs"], fused=got["fused"])


SUMMARY_KEYS = ("uar", "war", *(f"{k}_without_neutral_{r}" for r in RULES for k in ("uar", "war")))


def _pick(entry: dict, key: str) -> float | None:
    if key in ("uar", "war"):
        return entry[key]
    k, _, rest = key.partition("_without_neutral_")
    return (entry.get(f"without_neutral_{rest}") or {}).get(k)


SUMMARY_UNITS = ("fractions of 1 in every file (UAR/WAR 0.4567 = 45.67%); the terminal, the report and "
                 "the model card print them as percent with 2 decimals")


def fold_summary(results: list[dict]) -> list[dict]:
    """Per subset, across folds: for each score of ``SUMMARY_KEYS`` (all classes and, where
    defined, without neutral under each rule) ``{"mean", "std", "per_fold"}`` (std: the sample std,
    None for one fold; None for the whole score where no fold has it), with the folds and each
    fold's clip count ``n`` (clips scored under the subset)."""
    out = []
    for name in [e["name"] for e in results[0]["subsets"]]:
        rows = [next(e for e in r["subsets"] if e["name"] == name) for r in results]
        row = {"name": name, "folds": len(rows), "fold_ids": [r["fold"] for r in results],
               "n": [e["n"] for e in rows]}
        for key in SUMMARY_KEYS:
            vals = [_pick(e, key) for e in rows]
            got = [v for v in vals if v is not None]
            if not got:
                row[key] = None
                continue
            mean, std = mean_std(got)
            row[key] = {"mean": mean, "std": std if len(got) > 1 else None, "per_fold": vals}
        out.append(row)
    return out
