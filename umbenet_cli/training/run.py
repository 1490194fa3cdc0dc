"""``umbenet train``: check everything, then train each fold through its stages.

    runs/<name>/run.json                         options + resolved config + cache spec: the run
                                                 can be redone from this file alone
    runs/<name>/log.txt
    runs/<name>/<fold3|train-test>/<stage1|stage2|onestage>/   see training.loop

Every input problem (empty cache, another backbone, a fold that is not there, a class without
training clips, a modality the cache lacks, a bad override) is found before anything is written.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from umbenet_cli.data.cache_fit import check_backbone, check_fits
from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.data.class_subset import read_without_classes
from umbenet_cli.model.backbone import load_backbone
from umbenet_cli.model.config import MODALITIES
from umbenet_cli.devices import cuda_unused_note, describe_device
from umbenet_cli.training.data import Splits, failed_clips, make_splits, modality_mask, protocol_folds
from umbenet_cli.training.distributed import DistInfo, broadcast_object
from umbenet_cli.training.loop import StageTrainer
from umbenet_cli.training.options import TrainError, TrainOptions
from umbenet_cli.training.resume import cache_digest, check_same_clips, recorded_json, reopens
from umbenet_cli.training.tracking import open_tracker
from umbenet_cli.training.two_stage import (build_stage_model, stage_mode, stage1_checkpoint, transfer_warning,
                                            write_selection)

log = logging.getLogger(__name__)


def load_cache_for(opts: TrainOptions) -> FeatureTable:
    """The feature table without the run's excluded classes, checked against the model config
    (the backbone's weights are checked once loaded)."""
    table = read_without_classes(opts.cache, opts.exclude_classes)
    check_fits(table.spec, opts.model, str(opts.cache), TrainError, n_clips=len(table))
    return table


def available_modalities(table: FeatureTable, opts: TrainOptions) -> np.ndarray:
    """[N, 3]: what each clip has, restricted to the modalities this run trains on."""
    have = table.presence.any(axis=0)
    lacking = [m for m, h in zip(MODALITIES, have) if m in opts.modalities and not h]
    if lacking:
        raise TrainError(f"--modalities asks for {lacking}, which no clip of the cache has "
                         f"(it has {[m for m, h in zip(MODALITIES, have) if h]}); drop them from --modalities")
    return table.presence & modality_mask(opts.modalities)[None, :]


def resolve_folds(table: FeatureTable, fold: str | None) -> tuple[int | None, ...]:
    folds = protocol_folds(table)
    if not folds:
        if fold not in (None, ""):
            raise TrainError(f"--fold {fold}: this cache has a train/test split and no folds; leave --fold out")
        return (None,)
    if fold in (None, ""):
        raise TrainError(f"this cache defines folds {folds}: pass --fold N, or --fold all for the full protocol")
    if fold == "all":
        return tuple(folds)
    try:
        k = int(fold)
    except ValueError:
        raise TrainError(f"--fold {fold!r}: give a fold number ({folds}) or 'all'") from None
    if k not in folds:
        raise TrainError(f"--fold {k}: this cache defines folds {folds}")
    return (k,)


def prepare(opts: TrainOptions, new_run: bool) -> tuple[FeatureTable, np.ndarray, tuple[int | None, ...]]:
    """All checks, before anything is written: (table, available modalities [N, 3], folds)."""
    if new_run and (opts.run_dir / "run.json").exists():
        raise TrainError(f"{opts.run_dir} already holds a run: continue it with --resume, or pick another --name")
    table = load_cache_for(opts)
    check_same_clips(opts, cache_digest(table.clip_ids, table.labels, table.folds, table.splits))
    folds = resolve_folds(table, opts.fold)
    for fold in folds:
        make_splits(table, fold, opts.val_fraction, opts.seed)
    available = available_modalities(table, opts)
    if opts.stage == "2":
        for fold in folds:
            stage1_checkpoint(opts, fold)
    return table, available, folds


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("umbenet_cli")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def run_training(opts: TrainOptions, info: DistInfo, console: Console, resume: bool = False,
                 new_run: bool = True, logger: str = "tensorboard") -> list[dict]:
    """Train every fold of ``opts`` through its stages; returns one result per (fold, stage).
    ``logger``: tensorboard, wandb or none (``training.tracking``), beside metrics.jsonl."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not info.main:  # one process speaks for the run; errors still reach the terminal (cli.main)
        console = Console(quiet=True)
    # Only rank 0 asks whether the run is new: it alone writes run.json, so a later rank would find
    # rank 0's fresh run.json and refuse its own run (the launcher checked before spawning).
    table, available, folds = prepare(opts, new_run=new_run and not resume and info.main)
    backbone = load_backbone(opts.model.backbone, device=info.device)
    check_backbone(table.spec, opts.model.backbone, backbone.fingerprint(), TrainError)
    if info.main:
        procs = f" x {info.world} processes" if info.world > 1 else ""
        console.print(f"[bold]device[/]: {describe_device(info.device)}{procs}", highlight=False)
        note = cuda_unused_note(info.device)
        if note:
            console.print(f"[yellow]{note}[/]", highlight=False)
        opts.run_dir.mkdir(parents=True, exist_ok=True)
        digest = cache_digest(table.clip_ids, table.labels, table.folds, table.splits)
        (opts.run_dir / "run.json").write_text(recorded_json(opts, digest))
        (opts.run_dir / "classes.json").write_text(json.dumps(list(table.spec.classes)))
        _log_to_file(opts.run_dir / "log.txt")
        failed = failed_clips(table)
        if failed.any():
            console.print(f"[yellow]{int(failed.sum())} clips failed in prep (status failed, e.g. "
                          f"{', '.join(table.clip_ids[failed][:3])}): they take part in nothing[/]", highlight=False)
        if opts.exclude_classes:
            console.print(f"{len(table.spec.classes)}-class protocol: {', '.join(opts.exclude_classes)} left out "
                          f"of training, validation and test ({len(table)} clips kept)", highlight=False)
    results = []
    for fold in folds:
        splits = usable_splits(make_splits(table, fold, opts.val_fraction, opts.seed), table, available, console)
        if info.main:
            warn_val_share(splits, table, opts.val_fraction, console)
        for stage in opts.stage_names:
            folder = opts.split_dir(fold) / stage
            if broadcast_object((folder / "result.json").is_file(), info):  # rank 0's view decides
                done = json.loads((folder / "result.json").read_text())
                if not (resume and reopens(done, opts)):
                    results.append(done | {"fold": fold, "reused": True})
                    continue
                console.print(f"[bold]{splits.name} {stage}[/]: stopped at {done['stop_reason']}; going on "
                              f"under the raised limit", highlight=False)
            if info.main:
                folder.mkdir(parents=True, exist_ok=True)
            model, init = build_stage_model(opts, stage, fold, backbone, table, splits.train, available, info)
            model.to(info.device)
            trainer = StageTrainer(model, table, splits, available, stage_mode(stage, opts), stage, folder,
                                   opts.seed, info, opts.save_every, opts.max_steps)
            trainer.console = console
            if resume and trainer.resume():
                console.print(f"[bold]{splits.name} {stage}[/]: resumed at epoch {trainer.state.epoch + 1}, "
                              f"step {trainer.state.step_in_epoch}")
            elif init:
                if info.main:
                    (folder / "init.json").write_text(json.dumps(init, indent=2))
                console.print(f"[bold]{splits.name} {stage}[/]: {transfer_line(init)}")
                warning = transfer_warning(init)
                if warning:
                    log.warning("%s: %s", splits.name, warning)
                    console.print(f"[yellow]warning: {splits.name}: {warning}[/]")
            resumed_at = trainer.state.global_step if resume and trainer.state.global_step else None
            trainer.tracker = open_tracker(logger, folder, info.main, resumed_at, json.loads(opts.to_json()))
            console.print(f"[bold]{splits.name} {stage}[/]: {len(splits.train)} train / {len(splits.val)} val / "
                          f"{len(splits.test)} test clips, modalities {','.join(opts.modalities)}")
            t0 = time.perf_counter()
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, disable=not info.main)
            with progress, trainer.tracker:
                result = trainer.run(progress)
                trainer.tracker.summary(result)
            write_selection(model, folder, table, splits.train, available, info)
            result |= {"fold": fold, "seconds": time.perf_counter() - t0}
            results.append(result)
    if info.main:
        console.print(summary_table(opts, results))
        console.print(f"trained on {describe_device(info.device)}" + (f" x {info.world} processes" if info.world > 1 else ""),
                      highlight=False)
    return results


def usable_splits(splits: Splits, table: FeatureTable, available: np.ndarray, console: Console) -> Splits:
    """Train and validate only on clips that have at least one of the run's modalities."""
    has = available.any(1)
    kept = Splits(train=splits.train[has[splits.train]], val=splits.val[has[splits.val]],
                  test=splits.test, name=splits.name)
    dropped = len(splits.train) - len(kept.train) + len(splits.val) - len(kept.val)
    if dropped:
        console.print(f"[yellow]{splits.name}: {dropped} training/validation clips have none of the run's "
                      f"modalities and are left out[/]")
    classes = table.spec.classes
    lost = [c for i, c in enumerate(classes) if (table.labels[splits.train] == i).any()
            and not (table.labels[kept.train] == i).any()]
    if lost:
        console.print(f"[yellow]{splits.name}: no training clip of class(es) {lost} has these modalities "
                      f"(e.g. MAFW's neutral clips have no text): the model cannot learn them[/]")
    return kept


def transfer_line(init: dict) -> str:
    """One line on what stage 2 took from stage 1 (init.json)."""
    rule = init.get("rule", "above_uniform")
    return (f"carried {init['carried']} of stage 1's {init['stage1_pool_size']} prompts "
            f"(rule {rule}: {init['prompts_carried']}), {init['fresh']} fresh, from {init['init_from']}")


def warn_val_share(splits: Splits, table: FeatureTable, asked: float, console: Console) -> None:
    """Say so when validation holds far more than --val-fraction of the training folds: on small
    datasets each class keeps at least one validation clip (``training.data._stratified``)."""
    if (np.asarray(table.splits, dtype=object) == "val").any():
        return  # the cache's own validation clips: the user's choice
    n_val, n = len(splits.val), len(splits.val) + len(splits.train)
    if n and n_val / n > max(1.5 * asked, asked + 0.05):
        console.print(f"[yellow]{splits.name}: validation holds {n_val} of {n} training-fold clips "
                      f"({100 * n_val / n:.0f}%, --val-fraction {asked:g} asked {100 * asked:.0f}%): each class "
                      f"with 2 or more clips keeps one for validation. With this few clips, expect noisy "
                      f"validation scores; more clips per class bring the share down.[/]", highlight=False)


def summary_table(opts: TrainOptions, results: list[dict]) -> Table:
    # Readable at 80 columns: short headers, and why each stage stopped under the table, not in a
    # column; what does not fit wraps or folds inside its cell, never an ellipsis.
    stops = [f"{r['fold'] if r['fold'] is not None else '-'} {r['stage']}: {r['stop_reason'] or '-'}" for r in results]
    alone = {r["stage"] for r in results if r.get("val_rule") == "unimodal"}
    how = f" ({', '.join(sorted(alone))}: the mean over modalities, each alone)" if alone else ""
    table = Table(title=f"training summary: {opts.run_dir}",
                  caption=f"val UAR/WAR: % at the best epoch{how}. stopped: " + "; ".join(stops))
    for col in ("fold", "stage", "epochs", "steps", "best", "val UAR", "val WAR", "prompts kept/new", "time"):
        table.add_column(col, overflow="fold")
    for r in results:
        init_file = opts.split_dir(r["fold"]) / r["stage"] / "init.json"
        carried = "-"
        if init_file.is_file():
            init = json.loads(init_file.read_text())
            if "carried" in init:
                carried = f"{init['carried']} / {init['fresh']}" + (" (!)" if transfer_warning(init) else "")
            else:  # written before the transfer record existed
                carried = f"{len(init.get('prompts_carried', []))} / ?"
        table.add_row(str(r["fold"] if r["fold"] is not None else "-"), r["stage"], str(r["epochs"]),
                      str(r["global_step"]), str(r["best_epoch"]), f"{100 * r['best_val_uar']:.2f}",
                      f"{100 * r['best_val_war']:.2f}", carried,
                      "reused" if r.get("reused") else f"{r.get('seconds', 0):.0f} s")
    return table
